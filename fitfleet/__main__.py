"""``python -m fitfleet``: the same command line as the ``fitfleet`` script."""

from fitfleet.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
