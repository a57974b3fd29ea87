"""`backfill config`: show the effective settings and where each came from."""

from __future__ import annotations

import json

from backfill.cli._app import app, out_console, state


@app.command("config")
def show_config() -> None:
    """Print the effective configuration (file + environment + defaults) as JSON."""
    settings = state.settings()
    data = json.loads(settings.model_dump_json())
    data["_source_file"] = str(settings.source_file) if settings.source_file else None
    out_console.print_json(json.dumps(data))
