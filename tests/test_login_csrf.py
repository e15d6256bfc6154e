"""Login CSRF: a page or program that reaches the sign-in listener cannot sign puter-mcp in to
an account of its choosing; only the redirect that carries the sign-in's one-time state can."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from puter_mcp.accounts.login import run_login
from tests.helpers import Emulator, ScriptedBrowser, follow_sign_in, redirect_of, settings_for, stored, visit

pytestmark = pytest.mark.anyio


async def test_a_cross_site_token_without_the_state_is_ignored_and_the_wait_goes_on(
    emulator: Emulator, home: Path
) -> None:
    settings, paths = settings_for(emulator, home)
    attacker = emulator.free.token  # a valid token, but not the user's sign-in
    browser = ScriptedBrowser(
        # What a hostile page can make the browser send: it may know the path (say it leaked),
        # never the state.
        visit(None, f"token={attacker}", state=False),
        visit(None, f"state=guessed&token={attacker}", state=False),
        follow_sign_in,
    )

    sentence = await run_login(settings, paths, open_browser=browser, on_notice=lambda _: None, timeout=60)
    browser.join()

    assert browser.statuses == [400, 400, 200]
    for page in browser.responses[:2]:
        assert "not recognised" in page.text and "still waiting" in page.text
        assert attacker not in page.text
    assert "Signed in as paid_user" in sentence
    assert [account.username for account in stored(paths.accounts_file)] == ["paid_user"]
    # The attacker's token was never even checked with Puter.
    assert [r.username for r in emulator.state.requests if r.path == "/whoami"] == ["paid_user"]


async def test_the_redirect_url_carries_a_fresh_state_each_time(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)
    states = []
    for _ in range(2):
        browser = ScriptedBrowser(follow_sign_in)
        await run_login(settings, paths, open_browser=browser, on_notice=lambda _: None, timeout=60)
        browser.join()
        (url,) = browser.opened
        (state,) = parse_qs(urlsplit(redirect_of(url)).query)["state"]
        states.append(state)
        # Puter (here the emulator) sent the browser back with the state kept and the token added.
        (page,) = browser.responses
        back = parse_qs(urlsplit(str(page.url)).query)
        assert back["state"] == [state] and back["token"] == [emulator.paid.token]
    assert len(states[0]) >= 32 and states[0] != states[1]


def test_the_emulators_authme_keeps_the_redirects_query(emulator: Emulator) -> None:
    target = "http://localhost:9/cb?state=abc"
    answer = httpx2.get(f"{emulator.url}/", params={"action": "authme", "redirectURL": target})
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert (location.netloc, location.path) == ("localhost:9", "/cb")
    assert parse_qs(location.query) == {"state": ["abc"], "token": [emulator.paid.token]}
