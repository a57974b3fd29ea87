"""The reason codes of DESIGN §5, in the contract order: a document's decision is the first that applies."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["IDENTITY_REASONS", "SELECTED", "Reason", "by_rank"]

SELECTED = "selected"


class Reason(StrEnum):
    """Why a document is not sent. Declaration order is the contract order (rank 1 first)."""

    KIND_NOT_SELECTED = "kind_not_selected"
    NOT_VALIDATED = "not_validated"
    SUPERSEDED_VERSION = "superseded_version"
    ALREADY_IN_DMP = "already_in_dmp"
    FUTURE_DATED = "future_dated"
    OLDER_THAN_DEPTH = "older_than_depth"
    BEFORE_COMPUTERIZATION = "before_computerization"
    PATIENT_DECEASED = "patient_deceased"
    PATIENT_OPPOSED = "patient_opposed"
    IDENTITY_NOT_QUALIFIED = "identity_not_qualified"
    IDENTITY_DOUBTFUL = "identity_doubtful"
    INS_MISSING = "ins_missing"
    INS_INVALID = "ins_invalid"
    INS_TRAITS_INCOMPLETE = "ins_traits_incomplete"
    NO_DMP = "no_dmp"
    CONTENT_MISSING = "content_missing"
    CONTENT_UNSUPPORTED_FORMAT = "content_unsupported_format"
    CONTENT_TOO_LARGE = "content_too_large"
    CONTENT_CORRUPT = "content_corrupt"
    AUTHOR_UNKNOWN = "author_unknown"
    VISIBILITY_CONFLICT = "visibility_conflict"
    REPLACEMENT_TARGET_UNKNOWN = "replacement_target_unknown"
    # Appended by issue 16 (identity and document safety), in this order.
    INS_SHARED = "ins_shared"
    INS_TRAITS_INCONSISTENT = "ins_traits_inconsistent"
    INS_WRONG_ENVIRONMENT = "ins_wrong_environment"
    DOCUMENT_WITHHELD = "document_withheld"
    SET_WITHDRAWN = "set_withdrawn"
    STAY_CANCELLED = "stay_cancelled"
    MINOR_HELD_BACK = "minor_held_back"
    # Appended by issue 15 (per-kind refinements of a rule), in this order.
    NOT_RELEVANT = "not_relevant"
    BEYOND_KIND_LIMIT = "beyond_kind_limit"
    # Appended by issue 17: a row whose created_at the engine cannot read as a date.
    INVALID_DOCUMENT_DATA = "invalid_document_data"

    @property
    def rank(self) -> int:
        """1 for kind_not_selected … 32 for invalid_document_data."""
        return _RANKS[self]


_RANKS: dict[Reason, int] = {reason: i for i, reason in enumerate(Reason, start=1)}
_BY_RANK: dict[int, Reason] = {i: reason for reason, i in _RANKS.items()}

# What the identity-vigilance cell can fix (the worklist): a fictitious identity is not among
# them in practice, see `compiler` (it stays blocking when identity reasons are set aside).
IDENTITY_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.IDENTITY_NOT_QUALIFIED,
        Reason.IDENTITY_DOUBTFUL,
        Reason.INS_MISSING,
        Reason.INS_INVALID,
        Reason.INS_TRAITS_INCOMPLETE,
        Reason.INS_SHARED,
        Reason.INS_TRAITS_INCONSISTENT,
    }
)


def by_rank(rank: int) -> Reason:
    return _BY_RANK[rank]
