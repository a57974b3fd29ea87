"""`python -m backfill` runs the command line."""

from backfill.cli import main

main()
