"""`puter-mcp login`: the browser sign-in end to end against the emulator, --token, --temp.

The "browser" is scripted: an `open_browser` callable that starts a thread and GETs the
sign-in address with httpx2, following the emulator's authme redirect to our listener, as a
real browser would. It returns at once, like `webbrowser.open` with a graphical browser.
"""

from __future__ import annotations

import logging
import socket
import webbrowser
from pathlib import Path
from urllib.parse import quote, urlsplit

import anyio
import httpx2
import pytest

from puter_mcp.accounts.browser import TokenRejected, authme_url, listen_for_token
from puter_mcp.accounts.login import LoginError, run_login
from puter_mcp.accounts.store import Account, AccountsStore
from puter_mcp.core.stores import open_store
from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing.cooldowns import CooldownBook
from puter_mcp.routing.state import open_state_store
from tests.helpers import (
    BROWSER_THREAD,
    Emulator,
    ScriptedBrowser,
    follow_sign_in,
    redirect_of,
    settings_for,
    stored,
    visit,
)

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------------------------
# The scripted browser


def assert_refuses_connections(url: str) -> None:
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(url, timeout=5.0)


# --------------------------------------------------------------------------------------------
# The browser flow


async def test_browser_sign_in_saves_the_account_and_closes_the_listener(
    emulator: Emulator, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings, paths = settings_for(emulator, home)
    notices: list[str] = []
    browser = ScriptedBrowser(follow_sign_in, notices=notices)

    sentence = await run_login(settings, paths, open_browser=browser, on_notice=notices.append, timeout=60)
    browser.join()

    assert "Signed in as paid_user" in sentence
    (account,) = stored(paths.accounts_file)
    assert (account.name, account.username, account.uuid) == ("paid_user", "paid_user", emulator.paid.uuid)
    assert account.token.get_secret_value() == emulator.paid.token
    assert account.tier == "paid"
    # The address: the GUI host's authme, sent back to localhost on a secret path.
    (url,) = browser.opened
    redirect = redirect_of(url)
    assert url == authme_url(emulator.url, redirect)
    assert url.startswith(f"{emulator.url}/?action=authme&redirectURL={quote('http://localhost:', safe='')}")
    parts = urlsplit(redirect)
    assert parts.hostname == "localhost" and len(parts.path) == 33  # "/" + token_urlsafe(24)
    # Printed before the browser was asked to open it (headless machines read it there).
    assert any(url in notice for notice in browser.notices_seen_when_opened)
    # The browser went to Puter, was redirected to us and got the short page.
    (page,) = browser.responses
    assert page.status_code == 200
    assert [hop.status_code for hop in page.history] == [302]
    assert "You can close this tab" in page.text
    assert "text/html" in page.headers["content-type"]
    # The token appears nowhere but in the accounts file.
    # (The scripted browser's own HTTP log shows the URL it was sent to, token included, as a
    # browser's history would; everything logged by the product itself is checked.)
    product_log = [r.getMessage() for r in caplog.records if r.threadName != BROWSER_THREAD]
    assert any("/whoami" in line for line in product_log)
    for text in (sentence, page.text, *product_log, *notices):
        assert emulator.paid.token not in text
    # The listener stopped at once.
    assert_refuses_connections(redirect + "?token=x")


async def test_wrong_path_and_missing_token_are_refused_and_the_wait_goes_on(
    emulator: Emulator, home: Path
) -> None:
    emulator.state.authme_account = "free_user"
    settings, paths = settings_for(emulator, home)
    browser = ScriptedBrowser(
        visit("/favicon.ico"),
        # A token on the wrong path is never used, even a good one.
        visit("/not-the-secret", f"token={emulator.paid.token}"),
        visit(None, ""),
        visit(None, "token="),
        visit(None, "code=123"),
        follow_sign_in,
    )

    sentence = await run_login(settings, paths, open_browser=browser, on_notice=lambda _: None, timeout=60)
    browser.join()

    assert browser.statuses == [404, 404, 400, 400, 400, 200]
    assert "no token" in browser.responses[2].text.lower()
    assert "Signed in as free_user" in sentence
    assert [account.username for account in stored(paths.accounts_file)] == ["free_user"]
    # Only the accepted token was ever checked with Puter.
    whoami_users = [r.username for r in emulator.state.requests if r.path == "/whoami"]
    assert whoami_users == ["free_user"]


async def test_a_token_puter_rejects_is_refused_in_the_browser_and_the_wait_goes_on(
    emulator: Emulator, home: Path
) -> None:
    settings, paths = settings_for(emulator, home)
    notices: list[str] = []
    bogus = "eyJhbGciOiJIUzI1NiJ9.bm90LWEtcmVhbC10b2tlbg.c2lnbmF0dXJlLW5vdA"
    browser = ScriptedBrowser(visit(None, f"token={bogus}"), follow_sign_in)

    sentence = await run_login(settings, paths, open_browser=browser, on_notice=notices.append, timeout=60)
    browser.join()

    assert browser.statuses == [400, 200]
    assert "not accepted" in browser.responses[0].text.lower()
    assert "still waiting" in browser.responses[0].text
    assert "Signed in as paid_user" in sentence
    assert any("does not accept" in notice for notice in notices)
    for text in (*notices, browser.responses[0].text, sentence):
        assert bogus not in text


async def test_an_idle_browser_connection_does_not_hold_up_the_sign_in(
    emulator: Emulator, home: Path
) -> None:
    """Browsers pre-connect and send nothing; the listener serves other connections meanwhile."""
    settings, paths = settings_for(emulator, home)
    idle: list[socket.socket] = []

    def connect_idle(client: httpx2.Client, url: str) -> httpx2.Response:
        port = urlsplit(redirect_of(url)).port
        assert port is not None
        idle.append(socket.create_connection(("127.0.0.1", port), timeout=10.0))
        return follow_sign_in(client, url)

    browser = ScriptedBrowser(connect_idle)
    try:
        sentence = await run_login(
            settings, paths, open_browser=browser, on_notice=lambda _: None, timeout=60
        )
        browser.join()
    finally:
        for connection in idle:
            connection.close()

    assert len(idle) == 1
    assert browser.statuses == [200]
    assert "Signed in as paid_user" in sentence


async def test_timeout_when_no_browser_comes_back(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)
    notices: list[str] = []
    opened: list[str] = []

    def no_browser(url: str) -> bool:
        opened.append(url)
        return False  # what webbrowser.open says on a machine without one

    with pytest.raises(LoginError) as caught:
        await run_login(settings, paths, open_browser=no_browser, on_notice=notices.append, timeout=0.2)

    message = str(caught.value)
    assert "timed out after 0.2 s" in message
    assert "--token" in message and "--timeout" in message
    assert "nothing was saved" in message
    assert any("could not open a browser" in notice for notice in notices)
    assert not paths.accounts_file.exists()
    assert_refuses_connections(redirect_of(opened[0]))


async def test_timeout_says_a_token_was_rejected(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)
    browser = ScriptedBrowser(visit(None, "token=not-a-token"))

    with pytest.raises(LoginError) as caught:
        await run_login(settings, paths, open_browser=browser, on_notice=lambda _: None, timeout=3)
    browser.join()

    assert browser.statuses == [400]
    assert "1 token(s) Puter did not accept" in str(caught.value)
    assert not paths.accounts_file.exists()


async def test_headless_user_opens_the_printed_address(emulator: Emulator, home: Path) -> None:
    """No browser can be opened; the user copies the printed address into one."""
    settings, paths = settings_for(emulator, home)
    user = ScriptedBrowser(follow_sign_in)
    notices: list[str] = []

    def on_notice(message: str) -> None:
        notices.append(message)
        for word in message.split():
            if word.startswith(emulator.url + "/?action=authme"):
                user(word)

    def broken_browser(url: str) -> bool:
        raise webbrowser.Error("could not locate runnable browser")

    sentence = await run_login(settings, paths, open_browser=broken_browser, on_notice=on_notice, timeout=60)
    user.join()

    assert "Signed in as paid_user" in sentence
    assert user.statuses == [200]
    assert len(user.opened) == 1


async def test_a_failure_to_check_the_token_ends_the_wait_at_once(emulator: Emulator, home: Path) -> None:
    # The GUI host answers, the API host does not (port 1 refuses connections).
    settings, paths = settings_for(emulator, home, api_origin="http://127.0.0.1:1")
    browser = ScriptedBrowser(follow_sign_in)

    with pytest.raises(LoginError) as caught:
        await run_login(settings, paths, open_browser=browser, on_notice=lambda _: None, timeout=60)
    browser.join()

    assert "Could not check the token with http://127.0.0.1:1" in str(caught.value)
    assert emulator.paid.token not in str(caught.value)
    assert browser.statuses == [500]
    assert "terminal" in browser.responses[0].text
    assert not paths.accounts_file.exists()
    assert_refuses_connections(redirect_of(browser.opened[0]))


async def test_signing_in_again_replaces_the_token_and_keeps_the_settings(
    emulator: Emulator, home: Path
) -> None:
    settings, paths = settings_for(emulator, home)
    store = AccountsStore(paths.accounts_file)
    store.add_or_replace(
        Account.create(username="free_user", uuid=emulator.free.uuid, token=emulator.free.token, tier="free")
    )
    store.add_or_replace(
        Account.create(
            name="work",
            username="paid_user",
            uuid=emulator.paid.uuid,
            token="expired-token-0123456789",
            tier="free",
        )
    )
    store.set_tier_override("work", "paid")
    store.set_default("work")
    browser = ScriptedBrowser(follow_sign_in)

    sentence = await run_login(
        settings, paths, name="other", open_browser=browser, on_notice=lambda _: None, timeout=60
    )
    browser.join()

    assert "Updated the token of paid_user" in sentence
    assert "puter-mcp rename work other" in sentence
    snapshot = AccountsStore(paths.accounts_file).load()
    assert snapshot.names == ["free_user", "work"]
    assert snapshot.default == "work"
    work = snapshot.get("work")
    assert work is not None
    assert work.token.get_secret_value() == emulator.paid.token
    assert work.tier_override == "paid"
    assert work.tier == "paid"


async def test_sign_in_clears_the_accounts_cooldowns(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)
    state = open_state_store(paths.state_db, origin=settings.api_origin)
    book = CooldownBook(state)
    await book.record_failure(FailureKind.AUTH, account=emulator.paid.uuid, model="gpt-5-nano")
    await book.record_failure(FailureKind.RATE_LIMITED, account="user:paid_user", model="gpt-5-nano")
    await book.record_failure(FailureKind.AUTH, account=emulator.free.uuid, model="gpt-5-nano")
    await state.aclose()

    await run_login(
        settings,
        paths,
        token=emulator.paid.token,
        on_notice=lambda _: None,
        open_state=lambda: open_store(settings, paths),  # as the CLI passes it
    )

    state = open_state_store(paths.state_db, origin=settings.api_origin)
    try:
        book = CooldownBook(state)
        assert (await book.check(account=emulator.paid.uuid, model="gpt-5-nano")).eligible
        assert (await book.check(account="user:paid_user", model="gpt-5-nano")).eligible
        # Another account's cooldown is not touched.
        other = await book.check(account=emulator.free.uuid, model="gpt-5-nano")
        assert not other.eligible and other.kind is FailureKind.AUTH
    finally:
        await state.aclose()


# --------------------------------------------------------------------------------------------
# --token and --temp


async def test_token_is_checked_and_saved(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)

    sentence = await run_login(settings, paths, token=f"  {emulator.free.token}\n", name="mine")

    assert sentence.startswith("Signed in as free_user")
    (account,) = stored(paths.accounts_file)
    assert account.name == "mine" and account.token.get_secret_value() == emulator.free.token


async def test_a_token_puter_rejects_is_not_saved(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)
    bogus = "eyJhbGciOiJIUzI1NiJ9.dW5rbm93bi10b2tlbg.bm8tc2lnbmF0dXJl"

    with pytest.raises(LoginError) as caught:
        await run_login(settings, paths, token=bogus)

    assert "did not accept" in str(caught.value)
    assert bogus not in str(caught.value)
    assert not paths.accounts_file.exists()


async def test_temp_account_is_created_and_saved(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)

    sentence = await run_login(settings, paths, temp=True, on_notice=lambda _: None)

    (account,) = stored(paths.accounts_file)
    assert account.is_temp and account.tier == "temp"
    assert account.username.startswith("temp_")
    assert f"Signed in as {account.username} (temporary account)" in sentence
    created = emulator.state.accounts[account.username]
    assert account.token.get_secret_value() == created.token
    assert created.token not in sentence
    assert [r.path for r in emulator.state.requests] == ["/signup"]


async def test_temp_refused_by_captcha_says_what_to_do(emulator: Emulator, home: Path) -> None:
    emulator.state.signup_captcha_required = True
    settings, paths = settings_for(emulator, home)

    with pytest.raises(LoginError) as caught:
        await run_login(settings, paths, temp=True)

    message = str(caught.value)
    assert "refused to create a temporary account" in message
    assert "captcha" in message
    assert "`puter-mcp login`" in message and "--token" in message
    assert not paths.accounts_file.exists()


async def test_conflicting_or_invalid_options_fail_before_any_request(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)

    with pytest.raises(LoginError, match="not both"):
        await run_login(settings, paths, token=emulator.paid.token, temp=True)
    with pytest.raises(LoginError, match="not a valid account name"):
        await run_login(settings, paths, token=emulator.paid.token, name="has space")
    with pytest.raises(LoginError, match="more than 0 seconds"):
        await run_login(settings, paths, timeout=0, open_browser=lambda _: True, on_notice=lambda _: None)

    assert emulator.state.requests == []
    assert not paths.accounts_file.exists()


# --------------------------------------------------------------------------------------------
# The listener on its own


async def test_listener_refuses_other_methods_and_garbage() -> None:
    checked: list[str] = []
    result: list[str] = []

    async def check(token: str) -> str:
        checked.append(token)
        return "ok"

    async with listen_for_token() as callback:

        async def wait() -> None:
            result.append(await callback.wait(check))

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            base = f"http://127.0.0.1:{callback.port}"
            async with httpx2.AsyncClient(timeout=10.0) as client:
                posted = await client.post(f"{base}{callback.path}?state={callback.state}&token=abc")
                assert posted.status_code == 405
                stream = await anyio.connect_tcp("127.0.0.1", callback.port)
                async with stream:
                    await stream.send(b"NONSENSE\r\n\r\n")
                    answer = await stream.receive()
                assert answer.startswith(b"HTTP/1.1 400 ")
                assert checked == []
                accepted = await client.get(f"{base}{callback.path}?state={callback.state}&token=abc")
                assert accepted.status_code == 200
        assert not callback.listening
    assert result == ["ok"]
    assert checked == ["abc"]


async def test_listener_keeps_waiting_after_a_rejection_and_reraises_a_failure() -> None:
    calls: list[str] = []
    failures: list[Exception] = []
    pages: list[httpx2.Response] = []

    async def check(token: str) -> str:
        calls.append(token)
        if token == "bad":
            raise TokenRejected("Not this one.")
        raise RuntimeError("the disk is full")

    async with listen_for_token() as callback:

        async def wait() -> None:
            try:
                await callback.wait(check)
            except RuntimeError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            async with httpx2.AsyncClient(timeout=10.0) as client:
                for token in ("bad", "worse"):
                    pages.append(
                        await client.get(
                            f"http://127.0.0.1:{callback.port}{callback.path}?state={callback.state}&token={token}"
                        )
                    )
        assert not callback.listening

    assert calls == ["bad", "worse"]
    assert [str(failure) for failure in failures] == ["the disk is full"]
    assert [page.status_code for page in pages] == [400, 500]
    assert "Not this one." in pages[0].text
