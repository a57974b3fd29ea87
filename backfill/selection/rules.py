"""Selection rule files (`selectors/*.toml`, DESIGN §5): their model and a loader that names the bad key.

`load_rule` accepts a path or the name of a shipped rule (`history-20y` or `history-20y.toml`).
Types are strict: `depth_years = "5"` or `respect_computerization = 1` are errors, not guesses.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from backfill.errors import RuleError
from backfill.resources import data_folder, rule_file_names
from connectors.dpi.contract import DOCUMENT_KINDS, IDENTITY_STATUSES

__all__ = ["DEFAULT_RULE", "Rule", "load_rule", "parse_rule"]

DEFAULT_RULE = "history-5y"

Kind = Literal["LDL", "CRH", "CRO", "CR_CONSULT", "CR_URG", "CR_BIO", "CR_IMG", "ORDO", "OTHER"]
IdentityStatus = Literal["PROV", "RECUP", "VALI", "QUAL"]
if set(get_args(Kind)) != set(DOCUMENT_KINDS) or set(get_args(IdentityStatus)) != set(
    IDENTITY_STATUSES
):  # the rule's vocabulary is the DPI contract's
    raise ImportError("backfill.selection.rules disagrees with connectors.dpi.contract")

MediaType = Annotated[str, Field(min_length=3, pattern=r"^[a-z0-9.+-]+/[a-z0-9.+-]+$")]


class Rule(BaseModel):
    """One selection rule. `mode = "catch-up"` replaces the depth by a `--from/--to` window."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    mode: Literal["history", "catch-up"] = "history"
    kinds: list[Kind] = Field(min_length=1)
    depth_years: int | None = Field(None, ge=0, le=200)
    respect_computerization: bool = True
    identity_statuses: list[IdentityStatus] = Field(["QUAL"], min_length=1)
    media_types: list[MediaType] = Field(["application/pdf"], min_length=1)
    max_content_bytes: int = Field(20_000_000, gt=0)

    @model_validator(mode="after")
    def _depth_matches_mode(self) -> Rule:
        if self.mode == "catch-up" and self.depth_years is not None:
            raise _KeyProblem(
                "depth_years", "a catch-up rule has no depth: it takes a --from/--to window"
            )
        if self.mode == "history" and self.depth_years is None:
            raise _KeyProblem("depth_years", "required for a history rule (e.g. depth_years = 5)")
        return self

    @property
    def is_catch_up(self) -> bool:
        return self.mode == "catch-up"

    @property
    def digest(self) -> str:
        """A short hash of the rule's content, recorded with each run."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]


class _KeyProblem(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _describe(error: dict[str, object]) -> str:
    loc = [str(part) for part in error["loc"]]  # type: ignore[union-attr]
    key = loc[0] if loc else "(file)"
    if len(loc) > 1:
        key += f"[{loc[1]}]"
    message = str(error["msg"]).removeprefix("Value error, ")
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key (check its spelling)"
    elif kind == "literal_error" and loc and loc[0] == "kinds":
        message = f"unknown kind {error['input']!r}: one of {', '.join(DOCUMENT_KINDS)}"
    elif kind == "literal_error" and loc and loc[0] == "identity_statuses":
        message = (
            f"unknown identity status {error['input']!r}: one of {', '.join(IDENTITY_STATUSES)}"
        )
    elif kind == "missing":
        message = "required"
    ctx = error.get("ctx")
    if isinstance(ctx, dict) and isinstance(ctx.get("error"), _KeyProblem):
        key = ctx["error"].key
    return f"{key}: {message}"


def parse_rule(text: str, source: str) -> Rule:
    """Validate the TOML text of a rule; `source` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{source}: not valid TOML: {exc}") from None
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]  # type: ignore[arg-type]
        raise RuleError(f"{source}: invalid rule:\n  " + "\n  ".join(lines)) from None


def load_rule(name_or_path: str | Path | None = None) -> Rule:
    """A rule from a file path, or a shipped rule by name (default `history-5y`)."""
    spec = str(name_or_path or DEFAULT_RULE)
    path = Path(spec)
    if path.is_file():
        try:
            return parse_rule(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(f"{path}: cannot be read: {exc}") from None
    file_name = spec if spec.endswith(".toml") else f"{spec}.toml"
    shipped = rule_file_names()
    if "/" not in spec and "\\" not in spec and file_name in shipped:
        text = (data_folder("selectors") / file_name).read_text(encoding="utf-8")
        return parse_rule(text, f"selectors/{file_name}")
    names = ", ".join(n.removesuffix(".toml") for n in shipped)
    raise RuleError(f"{spec}: no such rule file, and not a shipped rule (shipped: {names})")
