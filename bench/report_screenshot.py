"""Render `backfill report --html` for a synthetic DPI and screenshot it in headless Chromium.

Prints how long gathering and rendering took, the page's size, and where the PNG is, so a person
can look at it (the page must read well at 1200 px wide with no network). Chromium is the Debian
package `chromium`; without it the page is still written and the screenshot is skipped.

    python bench/report_screenshot.py [--patients 2000] [--out-dir /tmp/backfill-report]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from backfill.config import Settings
from backfill.report import gather, render_html
from connectors.dpi.synthetic.generator import GenerationOptions, generate


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/backfill-report"))
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    dpi = args.out_dir / "dpi.sqlite"
    dpi.unlink(missing_ok=True)
    today = dt.date.today()
    engine = sa.create_engine(f"sqlite:///{dpi}")
    generate(engine, GenerationOptions(patients=args.patients, seed=1, as_of=today))
    engine.dispose()
    settings = Settings(
        dpi={"url": f"sqlite:///{dpi}"},
        ledger={"url": f"sqlite:///{args.out_dir / 'no-ledger.sqlite'}"},
        indicator={"activity": 45_000, "window": "S2-2023"},
    )
    started = time.perf_counter()
    data = gather(settings, dt.datetime.now(dt.UTC))
    gathered = time.perf_counter() - started
    started = time.perf_counter()
    page = render_html(data)
    rendered = time.perf_counter() - started
    html_file = args.out_dir / "report.html"
    html_file.write_text(page, encoding="utf-8")
    print(
        f"{args.patients} patients: gathered in {gathered:.1f} s, rendered in {rendered:.2f} s, {len(page) / 1024:.0f} KiB"
    )
    print(f"page: {html_file}")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium not installed (apt-get install chromium): no screenshot")
        return 0
    png = args.out_dir / "report.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={png}", "--window-size=1200,2000", html_file.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    print(f"screenshot: {png} ({png.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
