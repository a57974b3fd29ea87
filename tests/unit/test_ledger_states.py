"""The state machine of DESIGN §9 as data: what it allows, and a refusal for everything else."""

from __future__ import annotations

import itertools

import pytest

from backfill.errors import TransitionError
from backfill.ledger.states import TRANSITIONS, DocState, allowed_sources, require

S = DocState
ALLOWED = {(src, dst) for src, dsts in TRANSITIONS.items() for dst in dsts}
FORBIDDEN = sorted(set(itertools.product(S, S)) - ALLOWED)


def test_the_machine_is_design_section_9() -> None:
    # The happy path and its branches, and nothing leaving acked.
    for move in [
        (S.SELECTED, S.SENDING),
        (S.SENDING, S.ACKED),
        (S.SENDING, S.RETRY_WAIT),
        (S.SENDING, S.REJECTED),
        (S.SENDING, S.DEFERRED),
        (S.RETRY_WAIT, S.SENDING),
        (S.DEFERRED, S.SENDING),
        (S.REJECTED, S.SELECTED),
        (S.SENDING, S.SENDING),  # a crash leftover resent
    ]:
        assert move in ALLOWED
    assert TRANSITIONS[S.ACKED] == frozenset()
    assert allowed_sources(S.ACKED) == {S.SENDING}


@pytest.mark.parametrize(("source", "target"), FORBIDDEN, ids=lambda s: s.value)
def test_every_other_transition_is_refused(source: DocState, target: DocState) -> None:
    with pytest.raises(TransitionError, match=f"D1: {source} → {target}"):
        require([("D1", source.value, target)])


@pytest.mark.parametrize(("source", "target"), sorted(ALLOWED), ids=lambda s: s.value)
def test_allowed_transitions_pass(source: DocState, target: DocState) -> None:
    require([("D1", source.value, target)])


def test_an_unknown_state_is_refused_and_all_refusals_are_named() -> None:
    with pytest.raises(TransitionError) as caught:
        require(
            [("D1", "lost", S.SENDING), ("D2", "acked", S.SENDING), ("D3", "selected", S.SENDING)]
        )
    message = str(caught.value)
    assert "D1: unknown state 'lost'" in message
    assert "D2: acked → sending" in message
    assert "D3" not in message
