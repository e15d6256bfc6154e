"""The Python front end: a ready backend for programs that want it without MCP.

`puter_mcp.open_backend` (this module's `open_backend`) loads the settings as the `puter-mcp`
command does and yields a `puter_mcp.core.Backend`. Everything else a program needs (the calls,
the records, the errors) comes from `puter_mcp.core`, re-exported by the package; see
docs/python.md.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from puter_mcp.core import Backend
from puter_mcp.routing.chains import ChainConfigError
from puter_mcp.runtime import open_backend as _open_runtime_backend
from puter_mcp.settings import ConfigError, load_settings, resolve_paths

__all__ = ["open_backend"]


@asynccontextmanager
async def open_backend(
    *,
    sandbox: bool = False,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> AsyncIterator[Backend]:
    """Open the backend with the user's settings and accounts; close it when the block ends.

    ```
    async with puter_mcp.open_backend() as backend:
        outcome = await backend.chat(puter_mcp.ChatCall.build(message="hello"))
    ```

    Settings come from the config file, then the ``PUTER_MCP_*`` variables of `env`, as for
    the `puter-mcp` command (docs/configuration.md). Signal handlers are left as they are: the
    program owns them.

    Args:
        sandbox: answer from a built-in Puter emulator on a loopback port, with throw-away
            accounts and files: no account, no network. Its answers are not model output.
        config_file: the config file to read instead of the usual one.
        env: the environment (default: `os.environ`): ``PUTER_MCP_HOME``, ``PUTER_AUTH_TOKEN``
            (an account used first and never saved) and the settings' variables.
        on_warning: hears of a state database that could not be used (default: the log).

    Raises:
        puter_mcp.ConfigError: the config file (its chains included) or a variable is wrong;
            the message names which.
    """
    env = os.environ if env is None else env
    paths = resolve_paths(env, config_file=Path(config_file) if config_file is not None else None)
    try:
        settings, paths = load_settings(paths=paths, env=env)
    except ChainConfigError as exc:
        # One exception for every mistake in the configuration, whichever part checked it.
        raise ConfigError(str(exc)) from exc
    async with _open_runtime_backend(
        settings, paths, sandbox=sandbox, env=env, on_warning=on_warning, handle_signals=False
    ) as backend:
        yield backend
