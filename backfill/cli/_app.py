"""The `backfill` command: the Typer app, its global options, and the error boundary.

Every command module registers itself on `app`. `main()` is the console script: it turns the
engine's errors into one readable line and the exit code of DESIGN §11 (2 for configuration,
rules and authentication, 1 otherwise), so no traceback ever reaches the user; unexpected
errors are logged (redacted) with their traceback and summarised in one line.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from backfill.config import Settings, load_settings
from backfill.errors import BackfillError
from backfill.logs import configure_logging, get_logger, redact_text
from cda.specs import SpecsNotFound

__all__ = ["AppState", "app", "err_console", "main", "out_console", "state"]

# What a shell reports for a program ended by SIGPIPE: `backfill … | head` ends like `seq … | head`.
CLOSED_PIPE_EXIT = 128 + 13


def _end_on_closed_pipe() -> typer.Exit:
    """The reader of stdout went away (`| head`): stop quietly, with no last failing flush."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return typer.Exit(CLOSED_PIPE_EXIT)


class _ErrorBoundary(TyperGroup):
    """Every command runs inside this: a closed stdout ends it quietly (Click would exit 1)."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()
        except BrokenPipeError:
            raise _end_on_closed_pipe() from None
        except KeyboardInterrupt:  # Click would exit 130 without a word
            err_console.print("interrupted")
            raise typer.Exit(130) from None
        return result


app = typer.Typer(
    name="backfill",
    cls=_ErrorBoundary,
    help="Send the documents of earlier stays from the DPI to the DMP, and measure DS1.4.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


class _Console(Console):
    """Rich would end the process itself (exit 1) on a closed pipe; leave it to the boundary."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


out_console = _Console(highlight=False, soft_wrap=True)
err_console = _Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class AppState:
    """What the global options decided; settings are loaded on first use only."""

    config_file: Path | None = None
    log_level: str | None = None
    log_format: str | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
            configure_logging(
                self.log_level or self._settings.logging.level,
                self.log_format or self._settings.logging.format,
            )
        return self._settings


state = AppState()
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("auto", "json", "console")


@app.callback()
def _global_options(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Configuration file (default: ./backfill.toml if present)."),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="auto, json or console.")
    ] = None,
) -> None:
    if log_level is not None and log_level.upper() not in LOG_LEVELS:
        raise typer.BadParameter(
            f"{log_level!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="--log-level"
        )
    if log_format is not None and log_format not in LOG_FORMATS:
        raise typer.BadParameter(
            f"{log_format!r} is not one of {', '.join(LOG_FORMATS)}", param_hint="--log-format"
        )
    state.config_file = config
    state.log_level = log_level.upper() if log_level else None
    state.log_format = log_format
    state._settings = None
    configure_logging(state.log_level or "INFO", log_format or "auto")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        app(args=argv, prog_name="backfill")
    except BackfillError as exc:
        err_console.print(f"[bold red]error:[/] {escape(redact_text(str(exc)))}", markup=True)
        sys.exit(exc.exit_code)
    except SpecsNotFound as exc:  # the schemas are configuration: say how to point at them
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        get_logger("backfill").exception("unexpected error")
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(redact_text(str(exc)))} "
            "(the log above has the details; please report it)",
            markup=True,
        )
        sys.exit(1)
