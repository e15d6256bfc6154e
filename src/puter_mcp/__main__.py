"""`python -m puter_mcp` runs the same CLI as the `puter-mcp` script."""

from puter_mcp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
