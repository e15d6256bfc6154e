#!/bin/sh
# Add puter-mcp to Claude Code (the same as `puter-mcp install claude-code --run`).
# Without --scope the server is "local": this project, only you. Use `--scope user` for all your
# projects, or `puter-mcp install claude-code --scope project` to write a shared .mcp.json.
# The name comes before any --env/--header option: those take several values and would swallow it.
# BEFORE puter-mcp is on PyPI (today): the line below, with the absolute path of your checkout.
# AFTER it is published:  claude mcp add puter -- uvx puter-mcp
claude mcp add puter -- uvx --from /ABSOLUTE/PATH/TO/puter-mcp puter-mcp
