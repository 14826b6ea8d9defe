"""Run lutgen from a checkout: ``uv run python main.py COMMAND ...`` (same as ``uv run lutgen``)."""

from lutgen.cli import main

if __name__ == "__main__":
    main()
