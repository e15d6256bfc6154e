"""How the MCP server and the CLI word the backend's errors for a person at a terminal or in
an MCP client.

The core says what happened and names what can be done (`BackendError.action`); only the
front ends know the commands that do it. The coming HTTP gateway words the same errors as
HTTP statuses and API error bodies instead.
"""

from __future__ import annotations

from puter_mcp.core import BackendError, NotSignedIn

__all__ = ["CLI_MODELS_HINT", "MCP_MODELS_HINT", "SIGN_IN_HINT", "describe_error"]

SIGN_IN_HINT = (
    "run `puter-mcp login` (or set PUTER_AUTH_TOKEN), or try it without an account with `--sandbox`"
)
"""What a caller without any account can do (the CLI's and the server's `--sandbox` flag runs
everything against the built-in emulator)."""

MCP_MODELS_HINT = "`puter-models` lists the available models."
CLI_MODELS_HINT = "`puter-mcp models` lists the available models."


def describe_error(error: BackendError, *, models_hint: str = MCP_MODELS_HINT) -> str:
    """The error as one message: what happened, what to do (with this front end's commands),
    and any partial answer last, so that nothing received is lost."""
    if isinstance(error, NotSignedIn):
        return f"not signed in: {SIGN_IN_HINT}" + (f" ({error.problem})" if error.problem else "")
    text = error.summary
    if error.action == "list_models":
        text = f"{text} {models_hint}"
    elif error.action == "sign_in":
        text = f"{text}\nTo sign an account in (again): run `puter-mcp login` again."
    rest = error.message[len(error.summary) :] if error.message.startswith(error.summary) else ""
    return text + rest
