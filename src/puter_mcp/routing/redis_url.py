"""Redis URLs as the `state` setting names them: recognised, checked, and shown without a password.

Pure string work, without the ``redis`` client, so that the settings and the CLI can use it
without importing the client. The store itself is `puter_mcp.routing.state.redis`.

A URL is ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://...`` (TLS). The password
may also come from ``PUTER_MCP_REDIS_PASSWORD``; one written in the URL wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

__all__ = [
    "PASSWORD_ENV",
    "REDIS_SCHEMES",
    "check_redis_url",
    "is_redis_url",
    "masked_url",
    "redis_password",
    "url_password",
]

REDIS_SCHEMES = ("redis://", "rediss://")
"""The URL forms that select the Redis store."""

PASSWORD_ENV = "PUTER_MCP_REDIS_PASSWORD"  # noqa: S105 (the variable's name, not a password)
"""The environment variable that gives the Redis password when the URL has none."""

_MASK = "****"


def is_redis_url(target: str) -> bool:
    """Whether `target` names a Redis server (``redis://`` or ``rediss://``)."""
    return target.startswith(REDIS_SCHEMES)


def check_redis_url(url: str) -> None:
    """Refuse a URL the client could not use, with a sentence that never shows its password.

    Raises:
        ValueError: no host, a port that is not a number, or a database that is not one.
    """
    shown = masked_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{shown}: the port must be a number (redis://host:6379/0)") from None
    if not parts.hostname:
        raise ValueError(f"{shown}: the URL names no host (redis://host:6379/0)")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError(f"{shown}: the path must be a database number, as in redis://host:6379/0")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{shown}: the port must be between 1 and 65535")


def url_password(url: str) -> str | None:
    """The password written in the URL, if any (for the log's list of secrets to mask)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def masked_url(url: str) -> str:
    """The URL with its password replaced by ``****``, safe for logs, errors and displays."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    credentials, at, host = authority.rpartition("@")
    if not at:
        return url
    user, colon, password = credentials.partition(":")
    if colon and password:
        credentials = f"{user}:{_MASK}"  # a lone name (``redis://name@host``) is the user: shown
    return f"{scheme}://{credentials}@{host}{slash}{tail}"


def redis_password(env: Mapping[str, str] | None = None) -> str | None:
    """The Redis password from ``PUTER_MCP_REDIS_PASSWORD`` (one in the URL wins over it)."""
    return (os.environ if env is None else env).get(PASSWORD_ENV) or None
