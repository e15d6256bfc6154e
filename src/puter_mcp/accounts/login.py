"""Signing in: get a token (browser, pasted, or a new temporary account), check it, save the account.

Three ways in, one way out. Every path ends in `_save_signed_in`, which stores the account
(replacing the token of an account already stored, keeping its settings) and clears the
account's cooldowns in the shared routing state: an account disabled by an AUTH failure works
again at once, in every puter-mcp process, without waiting for anything.

The browser flow (`puter-mcp login` with no option) is Puter's official CLI sign-in; see
`puter_mcp.accounts.browser` for the listener. Decisions made here:

- The URL is always printed before the browser is asked to open it: on a headless machine, or
  when ``BROWSER`` names nothing usable, the user copies it.
- A token Puter does not accept (``/whoami`` answers 401/403) is refused in the browser and the
  wait goes on until the timeout: the user can simply retry the sign-in from the same address.
  A failure to *check* a token (Puter unreachable, an odd answer) or to save it ends the wait
  at once, because retrying in the browser would not help and the terminal must say why now.
- No token ever reaches a notice, a log line, a page or an exception message.
"""

from __future__ import annotations

import sys
import webbrowser
from collections.abc import Callable

import anyio
import anyio.to_thread

from puter_mcp.accounts.browser import TokenRejected, authme_url, listen_for_token
from puter_mcp.accounts.identity import every_account_id
from puter_mcp.accounts.store import (
    Account,
    AccountsError,
    AccountsStore,
    CorruptAccountsFile,
    validate_account_name,
)
from puter_mcp.puter.client import PuterClient, Timeouts, WhoAmI
from puter_mcp.puter.errors import FailureKind, PuterError
from puter_mcp.routing.cooldowns import CooldownBook
from puter_mcp.routing.state import StateStore
from puter_mcp.settings import Paths, Settings

__all__ = ["DEFAULT_TIMEOUT", "LoginError", "StateOpener", "run_login", "save_token"]

StateOpener = Callable[[], StateStore]
"""Opens the shared state store (the caller knows which one: see `puter_mcp.core.stores`)."""

DEFAULT_TIMEOUT = 300.0
"""Seconds the browser sign-in waits for the user (5 min)."""

_PASTE_ADVICE = "`puter-mcp login --token -` and paste a token (puter.com, Settings > API tokens)"


class LoginError(Exception):
    """The sign-in did not happen; the message says why and what to do."""


def _eprint(message: str) -> None:
    """Notices go to stderr: stdout may be read by a script (and the MCP stdio transport)."""
    print(message, file=sys.stderr, flush=True)


def _client_for(settings: Settings) -> PuterClient:
    return PuterClient(
        settings.api_origin,
        gui_origin=settings.gui_origin,
        timeouts=Timeouts(**settings.timeouts.model_dump()),
    )


# --------------------------------------------------------------------------------------------
# The public entry points


async def run_login(
    settings: Settings,
    paths: Paths,
    *,
    token: str | None = None,
    temp: bool = False,
    name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (the user's wait for the browser, not a call's)
    open_browser: Callable[[str], bool] = webbrowser.open,
    on_notice: Callable[[str], None] = _eprint,
    open_state: StateOpener | None = None,
) -> str:
    """Sign in and save the account; return the sentence to print.

    Args:
        token: a token the user pasted: checked with ``/whoami`` and saved.
        temp: create a temporary Puter account (``POST /signup`` with ``is_temp``).
        name: the local name for a new account (an account already stored keeps its name).
        timeout: seconds the browser flow waits for the user.
        open_browser: opens a URL; `webbrowser.open` honours the ``BROWSER`` variable.
        on_notice: receives progress and warnings meant for the terminal.
        open_state: opens the shared state, whose cooldowns of the account are cleared once it
            is saved; None: no shared state to clear.

    With neither `token` nor `temp`, signs in through the browser.

    Raises:
        LoginError: nothing was signed in; the message says what to do.
    """
    if token is not None and temp:
        raise LoginError("Give either a token or --temp, not both.")
    if name is not None:
        try:
            name = validate_account_name(name)
        except ValueError as exc:
            raise LoginError(f"{exc}; nothing was signed in.") from None
    async with _client_for(settings) as puter:
        if token is not None:
            return await save_token(
                settings, paths, token, name=name, client=puter, on_notice=on_notice, open_state=open_state
            )
        if temp:
            return await _sign_up_temp(
                settings, paths, puter, name=name, on_notice=on_notice, open_state=open_state
            )
        return await _browser_sign_in(
            settings,
            paths,
            puter,
            name=name,
            timeout=timeout,
            open_browser=open_browser,
            on_notice=on_notice,
            open_state=open_state,
        )


async def save_token(
    settings: Settings,
    paths: Paths,
    token: str,
    *,
    name: str | None = None,
    client: PuterClient | None = None,
    on_notice: Callable[[str], None] = _eprint,
    open_state: StateOpener | None = None,
) -> str:
    """Check `token` with ``/whoami`` and save its account; return a sentence for the user.

    A token Puter does not accept is never saved. Signing in again to an account already saved
    replaces its token and keeps its settings (name, default, tier override).
    """
    token = token.strip()
    if not token:
        raise LoginError(f"The token is empty; nothing was saved. Use {_PASTE_ADVICE}.")
    own_client = client is None
    puter = client or _client_for(settings)
    try:
        who = await _whoami(settings, puter, token)
    except TokenRejected as exc:
        raise LoginError(
            f"{exc} Nothing was saved. Check that the whole token was pasted, or sign in with "
            "`puter-mcp login` (in the browser)."
        ) from None
    finally:
        if own_client:
            await puter.aclose()
    return await _save_signed_in(paths, token, who, name=name, on_notice=on_notice, open_state=open_state)


# --------------------------------------------------------------------------------------------
# The three ways in


async def _whoami(settings: Settings, puter: PuterClient, token: str) -> WhoAmI:
    """Who `token` belongs to; `TokenRejected` when Puter refuses it, `LoginError` when unsure."""
    try:
        return await puter.whoami(token)
    except PuterError as exc:
        if exc.kind is FailureKind.AUTH:
            raise TokenRejected(f"Puter did not accept the token ({exc.message}).") from None
        raise LoginError(
            f"Could not check the token with {settings.api_origin}: {exc.message}. Nothing was saved; "
            "check the connection (and the api_origin setting) and sign in again."
        ) from exc


async def _sign_up_temp(
    settings: Settings,
    paths: Paths,
    puter: PuterClient,
    *,
    name: str | None,
    on_notice: Callable[[str], None],
    open_state: StateOpener | None,
) -> str:
    """Create a temporary account on the GUI host and save it."""
    try:
        token, who = await puter.signup_temp()
    except PuterError as exc:
        if exc.code == "captcha_required" or "captcha" in exc.message.lower():
            raise LoginError(
                f"{settings.gui_origin} refused to create a temporary account: it asks for a captcha "
                f"({exc.message}), which a command line cannot solve. Sign in with your own Puter "
                f"account instead: `puter-mcp login` (in the browser, where a new account can be "
                f"made too), or {_PASTE_ADVICE}. --temp works with a self-hosted Puter that allows it."
            ) from None
        raise LoginError(
            f"{settings.gui_origin} did not create a temporary account: {exc.message}. Sign in with "
            f"`puter-mcp login` (browser) or {_PASTE_ADVICE}."
        ) from None
    return await _save_signed_in(paths, token, who, name=name, on_notice=on_notice, open_state=open_state)


async def _browser_sign_in(
    settings: Settings,
    paths: Paths,
    puter: PuterClient,
    *,
    name: str | None,
    timeout: float,  # noqa: ASYNC109 (applied to the browser wait only, see below)
    open_browser: Callable[[str], bool],
    on_notice: Callable[[str], None],
    open_state: StateOpener | None,
) -> str:
    """Puter's CLI sign-in: open authme in the browser and wait for the redirect with a token."""
    if not timeout > 0:
        raise LoginError(f"The timeout must be more than 0 seconds, not {timeout:g}.")
    saved: list[str] = []
    rejected = 0

    async def check(token: str) -> str:
        nonlocal rejected
        try:
            who = await _whoami(settings, puter, token)
        except TokenRejected:
            rejected += 1
            on_notice(
                "puter-mcp: the browser brought back a token Puter does not accept; still waiting "
                "(retry the sign-in from the address above)."
            )
            raise
        # Shielded (see `_save_signed_in`) and no await after it: the account is saved and
        # recorded in one step, so the timeout cannot cancel between the two and report a
        # failure for a saved sign-in.
        sentence = await _save_signed_in(
            paths, token, who, name=name, on_notice=on_notice, open_state=open_state
        )
        saved.append(sentence)
        return sentence

    async with listen_for_token() as callback:
        url = authme_url(settings.gui_origin, callback.redirect_url)
        on_notice(
            "puter-mcp: sign in to Puter in your browser. If no browser opens, open this address "
            f"in a browser on this computer:\n\n  {url}\n"
        )
        on_notice(
            f"puter-mcp: waiting up to {timeout:g} s (Ctrl-C to stop). Without a browser on this "
            f"computer, use {_PASTE_ADVICE}."
        )
        failure: Exception | None = None
        with anyio.move_on_after(timeout):
            async with anyio.create_task_group() as group:
                group.start_soon(_open_in_browser, open_browser, url, on_notice)
                try:
                    await callback.wait(check)
                except Exception as exc:
                    # Raised below, outside the task group, which would wrap it in a group.
                    failure = exc
                group.cancel_scope.cancel()  # the browser opener may still be running: leave it
    if failure is not None:
        raise failure
    if saved:
        return saved[0]
    why = (
        f" The browser brought back {rejected} token(s) Puter did not accept."
        if rejected
        else " No sign-in came back from the browser."
    )
    raise LoginError(
        f"The sign-in timed out after {timeout:g} s; nothing was saved.{why} Run `puter-mcp login` "
        f"again (with `--timeout {max(timeout * 2, DEFAULT_TIMEOUT):g}` for more time), or use "
        f"{_PASTE_ADVICE}."
    )


async def _open_in_browser(
    open_browser: Callable[[str], bool], url: str, on_notice: Callable[[str], None]
) -> None:
    """Ask the browser to open `url`, in a thread (a terminal browser blocks until it exits).

    Failing to open is not fatal, the address is printed already, so it becomes a notice.
    """
    try:
        opened = await anyio.to_thread.run_sync(open_browser, url, abandon_on_cancel=True)
    except Exception as exc:
        on_notice(
            f"puter-mcp: could not open a browser ({type(exc).__name__}: {exc}); open the address above."
        )
        return
    if not opened:
        on_notice("puter-mcp: could not open a browser; open the address above yourself.")


# --------------------------------------------------------------------------------------------
# Saving


async def _save_signed_in(
    paths: Paths,
    token: str,
    who: WhoAmI,
    *,
    name: str | None,
    on_notice: Callable[[str], None],
    open_state: StateOpener | None,
) -> str:
    """Store the account and clear its cooldowns; return the sentence for the user.

    Shielded from cancellation (see `_browser_sign_in`): the work is milliseconds, and a sign-in
    saved but not cleared from the shared state would stay blocked.
    """
    sentence = ""  # a shielded scope never swallows an exception; pyright cannot tell
    with anyio.CancelScope(shield=True):
        sentence = await _save_and_clear(
            paths, token, who, name=name, on_notice=on_notice, open_state=open_state
        )
    return sentence


async def _save_and_clear(
    paths: Paths,
    token: str,
    who: WhoAmI,
    *,
    name: str | None,
    on_notice: Callable[[str], None],
    open_state: StateOpener | None,
) -> str:
    store = AccountsStore(paths.accounts_file)
    account = Account.create(
        name=name, username=who.username, uuid=who.uuid, token=token, is_temp=who.is_temp, tier=who.tier
    )
    try:
        try:
            saved, replaced = store.add_or_replace(account)
        except CorruptAccountsFile as exc:
            on_notice(f"puter-mcp: {exc}")
            on_notice("puter-mcp: starting a new accounts file; the damaged one stays where it says above.")
            saved, replaced = store.add_or_replace(account, overwrite_corrupt=True)
    except AccountsError as exc:
        raise LoginError(f"Puter accepted the sign-in, but the account could not be saved: {exc}") from None
    if open_state is not None:
        await _clear_cooldowns(open_state, saved)
    verb = "Updated the token of" if replaced else "Signed in as"
    kind = " (temporary account)" if who.is_temp else ""
    sentence = f"{verb} {who.username}{kind}; saved as account {saved.name!r} in {paths.accounts_file}."
    if replaced and name is not None and name.casefold() != saved.name.casefold():
        sentence += (
            f" It keeps its name {saved.name!r}; to change it: `puter-mcp rename {saved.name} {name}`."
        )
    return sentence


async def _clear_cooldowns(open_state: StateOpener, account: Account) -> None:
    """Forget every cooldown recorded against the account, in the state all processes share.

    Every id the account's state may be kept under is cleared (`every_account_id`).
    """
    state = open_state()
    try:
        book = CooldownBook(state)
        for account_id in every_account_id(account):
            await book.signed_in(account_id)
    finally:
        await state.aclose()
