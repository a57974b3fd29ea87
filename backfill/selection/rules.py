"""Selection rule files (`selectors/*.toml`, DESIGN §5): their model and a loader that names the bad key.

`load_rule` accepts a path or the name of a shipped rule (`history-20y` or `history-20y.toml`).
Types are strict: `depth_years = "5"` or `respect_computerization = 1` are errors, not guesses.
What the DMP must never receive is refused here, not trusted to the rule's author: an identity
other than QUAL (RNIV: only a qualified INS may reference shared health data) and a depth over
the programme's 20 years. What is allowed but advised against (a history rule taking biology,
imaging or prescriptions) is accepted with a warning (`Rule.warnings`), which the audit shows.
Per-kind refinements (`[per_kind.KIND]`: depth, unit/specialty/practice-setting filters, the N
most recent per patient) are checked here for their shape; the unit, specialty and setting codes
they name exist only in the DPI and are checked against it when a run or an audit starts
(`backfill.selection.codes`).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from backfill.errors import RuleError
from backfill.resources import data_folder, rule_file_names
from connectors.dpi.contract import DEFAULT_LIVE_FEED_KINDS, DOCUMENT_KINDS, IDENTITY_STATUSES

__all__ = [
    "ADVISED_AGAINST_IN_HISTORY",
    "AGE_OF_MAJORITY",
    "DEFAULT_RULE",
    "FILTERS",
    "MAX_DEPTH_YEARS",
    "KindRefinement",
    "MinorPolicy",
    "MinorsPolicy",
    "Rule",
    "load_rule",
    "parse_rule",
]

DEFAULT_RULE = "history-5y"
# The programme: "up to 5 years, up to 20 years possible".
MAX_DEPTH_YEARS = 20
# The programme advises against sending old biology, imaging reports and prescriptions.
ADVISED_AGAINST_IN_HISTORY = ("CR_BIO", "CR_IMG", "ORDO")
# A patient under this age at as_of is a minor: their legal representatives read their DMP.
AGE_OF_MAJORITY = 18

Kind = Literal["LDL", "CRH", "CRO", "CR_CONSULT", "CR_URG", "CR_BIO", "CR_IMG", "ORDO", "OTHER"]
# Only QUAL: the other RNIV statuses exist in the DPI contract but may never feed the DMP.
IdentityStatus = Literal["QUAL"]
if set(get_args(Kind)) != set(DOCUMENT_KINDS) or not set(get_args(IdentityStatus)) <= set(
    IDENTITY_STATUSES
):  # the rule's vocabulary is the DPI contract's
    raise ImportError("backfill.selection.rules disagrees with connectors.dpi.contract")

MinorPolicy = Literal["send", "invisible_to_legal_representatives", "hold_back"]


class MinorsPolicy(BaseModel):
    """What happens to the documents of a patient who is a minor at `as_of` (`[minors]`).

    Old documents never had a visibility choice made for them, and care under the minor's secret
    (contraception, abortion, psychiatry, addiction) must not reach the parents who read the
    child's Mon espace santé. Per unit first, then the sensitive units, then per practice
    setting (JDV_J04), then `default`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    default: MinorPolicy = "send"
    sensitive: MinorPolicy = "hold_back"
    sensitive_units: list[str] = []
    units: dict[str, MinorPolicy] = {}
    practice_settings: dict[str, MinorPolicy] = {}

    def policy_for(self, unit_code: str | None, practice_setting: str | None) -> MinorPolicy:
        if unit_code is not None and unit_code in self.units:
            return self.units[unit_code]
        if unit_code is not None and unit_code in self.sensitive_units:
            return self.sensitive
        if practice_setting is not None and practice_setting in self.practice_settings:
            return self.practice_settings[practice_setting]
        return self.default


MediaType = Annotated[str, Field(min_length=3, pattern=r"^[a-z0-9.+-]+/[a-z0-9.+-]+$")]
Code = Annotated[str, Field(min_length=1, max_length=64)]

# The per-kind filters: (include key, exclude key, the DPI column they look at, what a code is).
FILTERS: tuple[tuple[str, str, str, str], ...] = (
    ("units", "exclude_units", "dpi_document.unit_code", "unit"),
    ("specialties", "exclude_specialties", "dpi_author.specialty_code", "specialty"),
    (
        "practice_settings",
        "exclude_practice_settings",
        "dpi_unit.practice_setting_code",
        "practice setting",
    ),
)


class KindRefinement(BaseModel):
    """What a rule keeps of one of its kinds (`[per_kind.CR_CONSULT]`); every key is optional.

    `depth_years` replaces the rule's depth for this kind (older: `older_than_depth`). The
    filters look at the document's `unit_code`, its author's `specialty_code` and its unit's
    `practice_setting_code`: an include list keeps only documents whose code is listed (no
    code: not kept), an exclude list drops those whose code is listed (no code: kept); a
    document they drop is `not_relevant`. `latest = N` keeps, per patient, the N most recent
    documents of this kind (created_at, then document_id, descending) among those that
    everything the SQL query knows would otherwise select — a draft, a superseded version, a
    document of another unit or one already sent by the live feed does not use up a slot; the
    others are `beyond_kind_limit`. Ledger facts and `file:` content checks come after the
    query: a document we already sent keeps its slot (so a later run does not send an older one
    in its stead), and one whose file turns out unreadable keeps its slot too.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    depth_years: int | None = Field(None, ge=0)
    units: list[Code] | None = Field(None, min_length=1)
    exclude_units: list[Code] | None = Field(None, min_length=1)
    specialties: list[Code] | None = Field(None, min_length=1)
    exclude_specialties: list[Code] | None = Field(None, min_length=1)
    practice_settings: list[Code] | None = Field(None, min_length=1)
    exclude_practice_settings: list[Code] | None = Field(None, min_length=1)
    latest: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _coherent(self) -> KindRefinement:
        if self.depth_years is not None and self.depth_years > MAX_DEPTH_YEARS:
            raise _KeyProblem(
                "depth_years",
                f"at most {MAX_DEPTH_YEARS}: the programme allows a history of up to "
                f"{MAX_DEPTH_YEARS} years, not {self.depth_years}",
            )
        for include, exclude, _, _ in FILTERS:
            if getattr(self, include) is not None and getattr(self, exclude) is not None:
                raise _KeyProblem(
                    exclude, f"give {include} or {exclude}, not both (keep one list of codes)"
                )
        return self

    @property
    def filters(self) -> list[tuple[str, str, list[str]]]:
        """The filters given: (key, DPI column, codes); the key starts `exclude_` for an exclusion."""
        found = []
        for include, exclude, column, _ in FILTERS:
            for key in (include, exclude):
                codes = getattr(self, key)
                if codes is not None:
                    found.append((key, column, codes))
        return found


class Rule(BaseModel):
    """One selection rule. `mode = "catch-up"` replaces the depth by a `--from/--to` window."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    mode: Literal["history", "catch-up"] = "history"
    kinds: list[Kind] = Field(min_length=1)
    depth_years: int | None = Field(None, ge=0)
    respect_computerization: bool = True
    identity_statuses: list[IdentityStatus] = Field(["QUAL"], min_length=1)
    media_types: list[MediaType] = Field(["application/pdf"], min_length=1)
    max_content_bytes: int = Field(20_000_000, gt=0)
    # `block`: a local opposition stops the patient's documents (patient_opposed). `ask_dmp`:
    # send, and let the DMP answer (an opposition to opening Mon espace santé means no DMP, and
    # once a DMP exists the patient cannot oppose its feeding).
    local_opposition: Literal["block", "ask_dmp"] = "block"
    minors: MinorsPolicy = MinorsPolicy()
    per_kind: dict[Kind, KindRefinement] = {}
    # Where the rule came from, for errors found after loading (codes the DPI does not know).
    _source: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _depth_matches_mode(self) -> Rule:
        if self.mode == "catch-up" and self.depth_years is not None:
            raise _KeyProblem(
                "depth_years", "a catch-up rule has no depth: it takes a --from/--to window"
            )
        if self.mode == "history" and self.depth_years is None:
            raise _KeyProblem("depth_years", "required for a history rule (e.g. depth_years = 5)")
        if self.depth_years is not None and self.depth_years > MAX_DEPTH_YEARS:
            raise _KeyProblem(
                "depth_years",
                f"at most {MAX_DEPTH_YEARS}: the programme allows a history of up to "
                f"{MAX_DEPTH_YEARS} years, not {self.depth_years}",
            )
        for kind, refinement in self.per_kind.items():
            if kind not in self.kinds:
                raise _KeyProblem(
                    f"per_kind.{kind}",
                    f"{kind} is not in kinds: a refinement of a kind the rule does not take "
                    "would do nothing",
                )
            if self.mode == "catch-up" and refinement.depth_years is not None:
                raise _KeyProblem(
                    f"per_kind.{kind}.depth_years",
                    "a catch-up rule has no depth: it takes a --from/--to window",
                )
        return self

    def depth_for(self, kind: str) -> int | None:
        """The depth in years for documents of this kind: its own, else the rule's."""
        refinement = self.per_kind.get(kind)  # type: ignore[call-overload]
        if refinement is not None and refinement.depth_years is not None:
            return refinement.depth_years
        return self.depth_years

    @property
    def source(self) -> str:
        """The rule file as errors name it (`selectors/x.toml`, a path), or the rule's name."""
        return self._source or f"rule {self.name}"

    @property
    def warnings(self) -> list[str]:
        """What this rule does that is allowed but advised against, in words for the audit."""
        found = []
        advised_against = [k for k in ADVISED_AGAINST_IN_HISTORY if k in self.kinds]
        if self.mode == "history" and advised_against:
            found.append(
                f"rule {self.name}: a history rule taking {', '.join(advised_against)}; the "
                "programme advises against sending old biology, imaging reports and prescriptions"
            )
        if not self.minors.sensitive_units and self.minors.default != "hold_back":
            found.append(
                f"rule {self.name}: [minors] sensitive_units is empty: list the units whose care "
                "is under the minor's secret (contraception, abortion, psychiatry, addiction)"
            )
        return found

    @property
    def is_catch_up(self) -> bool:
        return self.mode == "catch-up"

    @property
    def digest(self) -> str:
        """A short hash of the rule's content, recorded with each run."""
        # Without per-kind refinements the digest stays what it was before they existed.
        content = self.model_dump(mode="json", exclude={"per_kind"} if not self.per_kind else None)
        canonical = json.dumps(content, sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]


class _KeyProblem(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _describe(error: dict[str, object]) -> str:
    # A dict key's own error ends its location with "[key]": the key is the problem.
    parts = [p for p in error["loc"] if p != "[key]"]  # type: ignore[attr-defined]
    loc = [str(part) for part in parts]
    key = loc[0] if loc else "(file)"
    for part in parts[1:]:
        # A list index in brackets (kinds[1]), a table key dotted (minors.units.PSY).
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    message = str(error["msg"]).removeprefix("Value error, ")
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key (check its spelling)"
    elif kind == "literal_error" and loc and loc[0] in ("kinds", "per_kind") and len(loc) <= 2:
        message = f"unknown kind {error['input']!r}: one of {', '.join(DOCUMENT_KINDS)}"
    elif kind == "literal_error" and loc and loc[0] == "identity_statuses":
        if error["input"] in IDENTITY_STATUSES:
            message = (
                f"{error['input']!r} is refused: only QUAL identities may feed the DMP (RNIV: an "
                "INS that was not both fetched from INSi and checked against an ID document "
                "cannot reference shared health data)"
            )
        else:
            message = f"unknown identity status {error['input']!r}: only QUAL is accepted"
    elif kind == "missing":
        message = "required"
    ctx = error.get("ctx")
    if isinstance(ctx, dict) and isinstance(ctx.get("error"), _KeyProblem):
        # A nested model's problem is named below its table (per_kind.CRH.depth_years).
        key = ctx["error"].key if not loc else f"{key}.{ctx['error'].key}"
    return f"{key}: {message}"


LIVE_FEED = "live_feed"


def parse_rule(
    text: str, source: str, live_feed_kinds: Sequence[str] = DEFAULT_LIVE_FEED_KINDS
) -> Rule:
    """Validate the TOML text of a rule; `source` names it in errors.

    `kinds = "live_feed"` means the kinds the live feed sends (`[live_feed] kinds`, given here
    as `live_feed_kinds`): a catch-up rule sends what the live feed would have sent.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{source}: not valid TOML: {exc}") from None
    if data.get("kinds") == LIVE_FEED:
        data["kinds"] = list(live_feed_kinds)
    try:
        rule = Rule.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]  # type: ignore[arg-type]
        raise RuleError(f"{source}: invalid rule:\n  " + "\n  ".join(lines)) from None
    rule._source = source
    return rule


def load_rule(
    name_or_path: str | Path | None = None,
    live_feed_kinds: Sequence[str] = DEFAULT_LIVE_FEED_KINDS,
) -> Rule:
    """A rule from a file path, or a shipped rule by name (default `history-5y`).

    `live_feed_kinds` is `[live_feed] kinds`, for a rule whose kinds are the live feed's."""
    spec = str(name_or_path or DEFAULT_RULE)
    path = Path(spec)
    if path.is_dir():
        raise RuleError(f"{path}: is a folder, not a rule file (give the path of a .toml rule)")
    if path.exists() and not path.is_file():
        raise RuleError(f"{path}: is not a regular file (a device or a pipe), not a rule file")
    if path.is_file():
        try:
            return parse_rule(path.read_text(encoding="utf-8"), str(path), live_feed_kinds)
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(f"{path}: cannot be read: {exc}") from None
    file_name = spec if spec.endswith(".toml") else f"{spec}.toml"
    shipped = rule_file_names()
    if "/" not in spec and "\\" not in spec and file_name in shipped:
        text = (data_folder("selectors") / file_name).read_text(encoding="utf-8")
        return parse_rule(text, f"selectors/{file_name}", live_feed_kinds)
    names = ", ".join(n.removesuffix(".toml") for n in shipped)
    raise RuleError(f"{spec}: no such rule file, and not a shipped rule (shipped: {names})")
