"""`python -m puter_mcp.emulator`: the same as `puter-mcp emulator`."""

from .runner import main

raise SystemExit(main())
