"""Signing in: check a token with Puter, then save the account it belongs to."""

from __future__ import annotations

from collections.abc import Callable

from puter_mcp.accounts.store import Account, AccountsStore, CorruptAccountsFile
from puter_mcp.puter.client import PuterClient
from puter_mcp.puter.errors import FailureKind, PuterError
from puter_mcp.settings import Paths, Settings

__all__ = ["LoginError", "save_token"]


class LoginError(Exception):
    """The token could not be checked or saved; the message says why and what to do."""


async def save_token(
    settings: Settings,
    paths: Paths,
    token: str,
    *,
    name: str | None = None,
    client: PuterClient | None = None,
    on_notice: Callable[[str], None] = print,
) -> str:
    """Check `token` with ``/whoami`` and save its account; return a sentence for the user.

    A token Puter does not accept is never saved. Signing in again to an account already saved
    replaces its token and keeps its settings (name, default, tier override).
    """
    own_client = client is None
    puter = client or PuterClient(settings.api_origin, gui_origin=settings.gui_origin)
    try:
        who = await puter.whoami(token)
    except PuterError as exc:
        if exc.kind is FailureKind.AUTH:
            raise LoginError(f"Puter did not accept that token ({exc.message}); nothing was saved.") from exc
        raise LoginError(
            f"could not check the token with {settings.api_origin}: {exc.message}; nothing was saved."
        ) from exc
    finally:
        if own_client:
            await puter.aclose()
    store = AccountsStore(paths.accounts_file)
    account = Account.create(
        name=name, username=who.username, uuid=who.uuid, token=token, is_temp=who.is_temp, tier=who.tier
    )
    try:
        saved, replaced = store.add_or_replace(account)
    except CorruptAccountsFile as exc:
        on_notice(f"puter-mcp: {exc}")
        on_notice("puter-mcp: starting a new accounts file; the damaged one stays where it says above.")
        saved, replaced = store.add_or_replace(account, overwrite_corrupt=True)
    verb = "Updated the token of" if replaced else "Signed in as"
    kind = " (temporary account)" if who.is_temp else ""
    return f"{verb} {who.username}{kind}; saved as account {saved.name!r} in {paths.accounts_file}."
