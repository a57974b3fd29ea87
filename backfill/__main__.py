"""`python -m backfill` runs the command line."""

from backfill.cli import main

# Guarded: the build pool's spawned processes import the main module again (as __mp_main__).
if __name__ == "__main__":
    main()
