"""`backfill config`: show the effective settings, and the file they came from (passwords hidden)."""

from __future__ import annotations

import json

from backfill.cli._app import app, out_console, state
from backfill.databases import describe_url


@app.command("config")
def show_config() -> None:
    """Print the effective configuration (file + environment + defaults) as JSON, passwords hidden."""
    settings = state.settings()
    data = json.loads(settings.model_dump_json())
    for section in ("dpi", "ledger", "dmp"):
        if data[section].get("url"):
            data[section]["url"] = describe_url(data[section]["url"])
    # Settings computed from others are shown as used, not as the null that means "derive it".
    data["vihf"]["structure_id"] = settings.structure_id
    data["_source_file"] = str(settings.source_file) if settings.source_file else None
    out_console.print_json(json.dumps(data))
