"""Splitting a patient's documents into submission sets, and bisecting a refused set."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill.submission_sets import SetVerdict, settle, split_sets
from tests.unit.virtual_time import run_virtual


@dataclass(frozen=True)
class Doc:
    name: int
    size: int
    bad: bool = False


docs_strategy = st.lists(
    st.builds(Doc, st.integers(0, 10**6), st.integers(1, 5000), st.booleans()), max_size=40
)


@given(docs_strategy, st.integers(1, 12), st.integers(1, 12_000))
def test_sets_keep_the_order_and_both_limits(docs: list[Doc], most: int, max_bytes: int) -> None:
    sets = split_sets(docs, max_documents=most, max_bytes=max_bytes)
    assert [d for part in sets for d in part] == docs
    for part in sets:
        assert 1 <= len(part) <= most
        # Over the byte limit only as a document alone (it cannot be split).
        assert sum(d.size for d in part) <= max_bytes or len(part) == 1


def test_a_set_is_full_before_the_next_starts() -> None:
    docs = [Doc(i, 10) for i in range(25)]
    assert [len(p) for p in split_sets(docs, max_documents=10, max_bytes=10**6)] == [10, 10, 5]
    assert [len(p) for p in split_sets(docs, max_documents=100, max_bytes=95)] == [9, 9, 7]


def _dmp(sent: list[list[Doc]], settled: list[Doc]):  # type: ignore[no-untyped-def]
    """A DMP that refuses any set holding a bad document as a whole (nothing stored)."""

    async def send(part: list[Doc]) -> SetVerdict:
        sent.append(part)
        if len(part) > 1 and any(d.bad for d in part):
            return SetVerdict.SPLIT
        settled.extend(part)  # stored, or the single bad document rejected
        return SetVerdict.SETTLED

    return send


@given(docs_strategy)
def test_one_bad_document_never_blocks_the_others(docs: list[Doc]) -> None:
    sent: list[list[Doc]] = []
    settled: list[Doc] = []
    run_virtual(settle(docs, _dmp(sent, settled)))
    assert sorted(settled, key=id) == sorted(docs, key=id)  # each settled exactly once
    for doc in docs:
        if doc.bad:
            assert [doc] in sent  # isolated, so its refusal is its own
    bad = sum(d.bad for d in docs)
    # Bisection: about 2·log2(n) extra sets per bad document, never the 2^n of trying subsets.
    assert len(sent) <= 1 + 2 * bad * max(1, len(docs)).bit_length()


def test_a_clean_set_goes_once() -> None:
    sent: list[list[Doc]] = []
    settled: list[Doc] = []
    docs = [Doc(i, 1) for i in range(10)]
    assert run_virtual(settle(docs, _dmp(sent, settled))) == 1
    assert sent == [docs]


def test_the_bad_document_ends_up_alone() -> None:
    sent: list[list[Doc]] = []
    settled: list[Doc] = []
    docs = [Doc(i, 1, bad=(i == 6)) for i in range(10)]
    run_virtual(settle(docs, _dmp(sent, settled)))
    assert [Doc(6, 1, True)] in sent
    assert sorted(d.name for d in settled) == list(range(10))
    # 10 → 5+5 → the clean half goes whole; 5 → 2+3 → 3 → 1+2 → 2 → 1+1: 7 sets, not 10.
    assert len(sent) <= 7


def test_a_sender_that_splits_a_single_document_is_a_bug_not_a_loop() -> None:
    async def always_split(part: list[Doc]) -> SetVerdict:
        return SetVerdict.SPLIT

    with pytest.raises(RuntimeError, match="single document"):
        run_virtual(settle([Doc(1, 1), Doc(2, 1)], always_split))
