"""The gateway's API keys and per-key limits.

From the inside out: the key store and the limiter (a clock the test moves, no sleeping), the
`KeyRing` gate, `puter-mcp keys`, the gateway driven by the official `openai` client (401, 403,
429 with Retry-After, the admin routes), and two `puter-mcp gateway` processes sharing one key
store and one key's limits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from limits.aio.storage import MemoryStorage

from puter_mcp.cli import main
from puter_mcp.gateway.access import Caller
from puter_mcp.gateway.failures import GatewayError
from puter_mcp.gateway.keys import KeyRing
from puter_mcp.gateway.keystore import (
    DuplicateKeyName,
    KeyDatabase,
    KeyLimits,
    KeySpec,
    KeyStoreError,
    SQLiteKeyStore,
    UnknownKeyName,
    hash_secret,
    key_store_file,
    new_secret,
    parse_expiry,
    parse_models,
)
from puter_mcp.gateway.limiter import KeyLimiter, SQLiteLimitStorage
from puter_mcp.logs import RedactingFilter
from puter_mcp.settings import resolve_paths
from tests.helpers import (
    Emulator,
    GatewayProcess,
    RunningGateway,
    assert_a_new_key_reaches_every_gateway,
    keys_cli,
    running_gateway,
    save_accounts,
    script_env,
    start_gateway_process,
)

pytestmark = pytest.mark.anyio

MODEL = "gpt-5-nano"
NOW = 1_800_000_000.0


class Clock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ring_over(path: Path, *, required: bool = True, clock: Clock | None = None) -> KeyRing:
    return KeyRing.open(path, required=required, clock=clock or Clock())


# -- keys and the store -------------------------------------------------------------------


def test_a_key_is_long_random_and_stored_only_as_its_digest(tmp_path: Path) -> None:
    secret = new_secret()
    assert secret.startswith("pmk-") and len(secret) >= 4 + 43
    assert new_secret() != secret
    store = SQLiteKeyStore(tmp_path / "data" / "keys.db")
    record, secret = store.create_now(KeySpec("ci"), now=NOW)
    store.close()
    assert record.hint == f"pmk-{secret[4:8]}…{secret[-4:]}"
    stored = b"".join(path.read_bytes() for path in (tmp_path / "data").iterdir())
    assert secret.encode() not in stored
    assert secret[4:-4].encode() not in stored
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored


def test_the_store_file_is_owner_only(tmp_path: Path) -> None:
    SQLiteKeyStore(tmp_path / "fresh" / "keys.db").create_now(KeySpec("ci"), now=NOW)
    assert stat.S_IMODE(os.stat(tmp_path / "fresh").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "fresh" / "keys.db").st_mode) == 0o600


async def test_names_are_unique_among_live_keys_and_revoking_frees_one(tmp_path: Path) -> None:
    store = SQLiteKeyStore(tmp_path / "keys.db")
    first, first_secret = await store.create(KeySpec("ci", limits=KeyLimits(rpm=5)), now=NOW)
    with pytest.raises(DuplicateKeyName, match="already exists"):
        await store.create(KeySpec("ci"), now=NOW)
    revoked = await store.revoke("ci", now=NOW + 1)
    assert revoked.id == first.id
    with pytest.raises(UnknownKeyName):
        await store.revoke("ci", now=NOW + 2)
    second, _ = await store.create(KeySpec("ci"), now=NOW + 3)
    assert second.id != first.id
    assert [key.id for key in await store.list()] == [second.id]
    assert len(await store.list(include_revoked=True)) == 2
    found = await store.find(hash_secret(first_secret))
    assert found is not None and found.revoked == NOW + 1
    assert await store.find(hash_secret(new_secret())) is None
    await store.aclose()


@pytest.mark.parametrize("name", ["", "with space", "-dash-first", "x" * 65, "slash/y", "ünï"])
def test_a_bad_name_is_refused(name: str) -> None:
    with pytest.raises(KeyStoreError, match="not usable"):
        KeySpec(name)


@pytest.mark.parametrize("limits", [{"rpm": 0}, {"rph": -3}, {"rpd": 10**9}, {"rpm": 1.5}, {"rpm": True}])
def test_a_bad_limit_is_refused(limits: dict[str, Any]) -> None:
    with pytest.raises(KeyStoreError, match=next(iter(limits))):
        KeyLimits(**limits)


def test_expiry_takes_a_date_a_time_or_a_span() -> None:
    now = datetime(2027, 3, 1, 12, tzinfo=UTC).timestamp()
    assert parse_expiry("2027-03-05", now=now) == datetime(2027, 3, 6, tzinfo=UTC).timestamp()
    assert parse_expiry("2027-03-05T08:30", now=now) == datetime(2027, 3, 5, 8, 30, tzinfo=UTC).timestamp()
    assert (
        parse_expiry("2027-03-05T08:30+02:00", now=now) == datetime(2027, 3, 5, 6, 30, tzinfo=UTC).timestamp()
    )
    assert parse_expiry("30d", now=now) == now + 30 * 86400
    assert parse_expiry("12h", now=now) == now + 12 * 3600
    with pytest.raises(KeyStoreError, match="already past"):
        parse_expiry("2027-02-28", now=now)
    with pytest.raises(KeyStoreError, match="not a date"):
        parse_expiry("next tuesday", now=now)
    with pytest.raises(KeyStoreError, match="not a date"):
        parse_expiry("2027-02-30", now=now)


def test_models_and_which_a_key_allows(tmp_path: Path) -> None:
    assert parse_models("gpt-5-nano, Claude-Sonnet-4 ,gpt-5-nano") == ("gpt-5-nano", "Claude-Sonnet-4")
    assert parse_models(None) is None
    with pytest.raises(KeyStoreError, match="at least one"):
        parse_models(" , ")
    store = SQLiteKeyStore(tmp_path / "keys.db")
    record, _ = store.create_now(KeySpec("m", models=("gpt-5-nano", "coding-elite")), now=NOW)
    assert record.allows_model("gpt-5-nano")
    assert record.allows_model("GPT-5-NANO")
    assert record.allows_model("openai/gpt-5-nano")
    assert record.allows_model("coding-elite")
    assert record.allows_model(None)  # a route that names no model (the model list)
    assert not record.allows_model("claude-sonnet-4")
    assert not record.allows_model("gpt-5")


# -- the limiter ----------------------------------------------------------------------------


def limiter_over(path: Path, clock: Clock) -> tuple[KeyLimiter, SQLiteLimitStorage]:
    storage = SQLiteLimitStorage(KeyDatabase(path), clock=clock)
    return KeyLimiter(storage, clock=clock), storage


async def test_a_minute_limit_admits_that_many_and_says_when_a_place_frees(tmp_path: Path) -> None:
    clock = Clock()
    limiter, _ = limiter_over(tmp_path / "keys.db", clock)
    limits = KeyLimits(rpm=3)
    verdicts = []
    for _ in range(5):
        verdicts.append(await limiter.admit("k1", limits))
        clock.now += 10
    assert [v.admitted for v in verdicts] == [True, True, True, False, False]
    assert verdicts[3].retry_after == pytest.approx(30.0)  # the first place frees at NOW + 60
    assert verdicts[4].retry_after == pytest.approx(20.0)
    assert verdicts[3].describe() == "3 requests per minute"
    clock.now = NOW + 60  # the first request leaves the window exactly now
    assert (await limiter.admit("k1", limits)).admitted
    assert not (await limiter.admit("k1", limits)).admitted
    assert (await limiter.admit("another key", limits)).admitted


async def test_a_refused_request_counts_in_no_window(tmp_path: Path) -> None:
    clock = Clock()
    limiter, storage = limiter_over(tmp_path / "keys.db", clock)
    limits = KeyLimits(rpm=2, rph=3)
    assert (await limiter.admit("k", limits)).admitted
    assert (await limiter.admit("k", limits)).admitted
    for _ in range(5):  # refused by the minute: must not use the hour's last place
        refused = await limiter.admit("k", limits)
        assert not refused.admitted and refused.label == "rpm"
    clock.now += 61
    assert (await limiter.admit("k", limits)).admitted
    clock.now += 61
    by_hour = await limiter.admit("k", limits)
    assert not by_hour.admitted and by_hour.label == "rph"
    assert by_hour.retry_after == pytest.approx(3600 - 122)
    assert by_hour.describe() == "3 requests per hour"
    # A day limit refusing first leaves the minute window untouched too (all or none).
    day = KeyLimits(rpm=5, rpd=1)
    assert (await limiter.admit("d", day)).admitted
    assert not (await limiter.admit("d", day)).admitted
    minute_key = "LIMITER/d/5/1/minute"
    assert (await storage.get_moving_window(minute_key, 5, 60))[1] == 1


async def test_a_long_window_holds_many_requests_and_frees_them_in_order(tmp_path: Path) -> None:
    clock = Clock()
    limiter, storage = limiter_over(tmp_path / "keys.db", clock)
    limits = KeyLimits(rpd=300)
    for _ in range(300):
        assert (await limiter.admit("k", limits)).admitted
        clock.now += 1
    refused = await limiter.admit("k", limits)
    assert not refused.admitted and refused.retry_after == pytest.approx(86400 - 300)
    assert await storage.get_moving_window("LIMITER/k/300/1/day", 300, 86400) == (NOW, 300)
    clock.now = NOW + 86400 + 1.5  # the first two have left the window
    assert [(await limiter.admit("k", limits)).admitted for _ in range(3)] == [True, True, False]


async def test_the_wait_is_the_longest_of_the_full_windows(tmp_path: Path) -> None:
    clock = Clock()
    limiter, _ = limiter_over(tmp_path / "keys.db", clock)
    limits = KeyLimits(rpm=1, rph=1)
    assert (await limiter.admit("k", limits)).admitted
    clock.now += 5
    refused = await limiter.admit("k", limits)
    assert refused.label == "rph" and refused.retry_after == pytest.approx(3595)


async def test_the_limiter_works_over_the_libraries_memory_storage() -> None:
    limiter = KeyLimiter(MemoryStorage())
    limits = KeyLimits(rpm=2, rpd=100)
    assert [(await limiter.admit("k", limits)).admitted for _ in range(4)] == [True, True, False, False]
    refused = await limiter.admit("k", limits)
    assert refused.label == "rpm" and refused.retry_after is not None and 0 < refused.retry_after <= 60


def test_two_connections_to_one_file_share_a_limit_exactly(tmp_path: Path) -> None:
    """Each thread has its own connection, as each gateway process has: the IMMEDIATE
    transaction must let exactly `rpm` requests through however they interleave."""
    path = tmp_path / "keys.db"
    KeyDatabase(path).close()
    limits = KeyLimits(rpm=25)
    admitted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        limiter, storage = limiter_over(path, Clock())

        async def run() -> list[bool]:
            return [(await limiter.admit("shared", limits)).admitted for _ in range(20)]

        results = asyncio.run(run())
        storage.database.close()
        with lock:
            admitted.extend(results)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(admitted) == 80
    assert admitted.count(True) == 25


async def test_old_entries_are_forgotten(tmp_path: Path) -> None:
    clock = Clock()
    limiter, storage = limiter_over(tmp_path / "keys.db", clock)
    for identity in ("a", "b", "c"):
        await limiter.admit(identity, KeyLimits(rpd=10))
    clock.now += 86400
    assert storage.forget_old() == 3


# -- the gate ---------------------------------------------------------------------------------


async def test_the_gate_with_keys_required(tmp_path: Path) -> None:
    clock = Clock()
    ring = ring_over(tmp_path / "keys.db", clock=clock)
    _, plain = await ring.create(KeySpec("plain"))
    _, admin = await ring.create(KeySpec("boss", admin=True))
    _, soon = await ring.create(KeySpec("soon", expires=NOW + 60))
    _, revoked = await ring.create(KeySpec("gone"))
    await ring.revoke("gone")

    assert await ring.admit(plain, MODEL) == Caller(key="plain", admin=False)
    assert await ring.admit(f"  {admin} ", MODEL) == Caller(key="boss", admin=True)
    for secret in (None, "", "sk-anything", new_secret(), revoked):
        with pytest.raises(GatewayError) as refused:
            await ring.admit(secret, MODEL)
        assert refused.value.status == 401 and refused.value.category == "authentication"
        assert secret is None or secret == "" or secret not in refused.value.message
    assert await ring.admit(soon, MODEL) == Caller(key="soon")
    clock.now += 60
    with pytest.raises(GatewayError, match="expired on") as expired:
        await ring.admit(soon, MODEL)
    assert expired.value.status == 401 and soon not in expired.value.message
    await ring.aclose()


async def test_the_gate_with_keys_off_still_checks_a_puter_key(tmp_path: Path) -> None:
    ring = ring_over(tmp_path / "keys.db", required=False)
    _, limited = await ring.create(KeySpec("one", limits=KeyLimits(rpm=1)))
    assert await ring.admit(None, MODEL) == Caller()
    assert await ring.admit("sk-anything", MODEL) == Caller()  # an SDK's dummy key
    assert await ring.admit("ollama", MODEL) == Caller()
    with pytest.raises(GatewayError) as unknown:
        await ring.admit(new_secret(), MODEL)
    assert unknown.value.status == 401
    assert await ring.admit(limited, MODEL) == Caller(key="one")
    with pytest.raises(GatewayError) as over:
        await ring.admit(limited, MODEL)
    assert over.value.status == 429 and over.value.code == "rate_limit_exceeded"
    assert over.value.headers() == {"Retry-After": "60"}
    await ring.aclose()


async def test_models_limits_and_usage_through_the_gate(tmp_path: Path) -> None:
    clock = Clock()
    ring = ring_over(tmp_path / "keys.db", clock=clock)
    _, secret = await ring.create(KeySpec("narrow", models=("gpt-5-nano",), limits=KeyLimits(rpm=2)))
    with pytest.raises(GatewayError) as forbidden:
        await ring.admit(secret, "claude-sonnet-4")
    assert forbidden.value.status == 403 and forbidden.value.param == "model"
    assert "gpt-5-nano" in forbidden.value.message
    await ring.admit(secret, MODEL)
    await ring.admit(secret, None)
    for _ in range(3):
        with pytest.raises(GatewayError) as over:
            await ring.admit(secret, MODEL)
        assert over.value.status == 429 and "2 requests per minute" in over.value.message
        assert over.value.retry_after == pytest.approx(60)
    usage = await ring.usage(NOW - 3600)
    assert [(u.key, u.requests, u.rate_limited) for u in usage] == [("narrow", 2, 3)]
    assert await ring.usage(NOW + 3600) == []
    listed = await ring.list()
    assert listed[0].last_used == NOW
    await ring.aclose()


# -- puter-mcp keys ---------------------------------------------------------------------------


def test_the_cli_prints_a_key_once_and_lists_it_masked(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "keys",
                "create",
                "ci",
                "--rpm",
                "10",
                "--models",
                "gpt-5-nano,claude-sonnet-4",
                "--expires",
                "30d",
            ]
        )
        == 0
    )
    created = capsys.readouterr()
    secret = created.out.strip()
    assert secret.startswith("pmk-") and "\n" not in secret
    assert "only time the key is shown" in created.err and secret not in created.err

    paths = resolve_paths({"PUTER_MCP_HOME": str(home)})
    assert stat.S_IMODE(os.stat(key_store_file(paths)).st_mode) == 0o600

    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ci" in listing and "10/m" in listing and "gpt-5-nano,claude-sonnet-4" in listing
    assert f"pmk-{secret[4:8]}…{secret[-4:]}" in listing
    assert secret not in listing and secret[4:-4] not in listing

    assert main(["keys", "create", "ci"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["keys", "create", "late", "--expires", "2001-01-01"]) == 1
    assert "already past" in capsys.readouterr().err

    assert main(["keys", "revoke", "ci"]) == 0
    assert "Revoked the key 'ci'" in capsys.readouterr().out
    assert main(["keys", "revoke", "ci"]) == 1
    assert "no key is named 'ci'" in capsys.readouterr().err
    assert main(["keys", "list"]) == 0
    assert "No API keys yet" in capsys.readouterr().out


def test_the_cli_refuses_a_limit_below_one(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keys", "create", "ci", "--rpm", "0"])
    assert exited.value.code == 2
    assert "at least 1 request" in capsys.readouterr().err


# -- the gateway, through the official client -------------------------------------------------


def _store_of(gateway: RunningGateway) -> SQLiteKeyStore:
    return SQLiteKeyStore(key_store_file(gateway.paths))


def _create(gateway: RunningGateway, spec: KeySpec) -> str:
    store = _store_of(gateway)
    try:
        return store.create_now(spec, now=datetime.now(UTC).timestamp())[1]
    finally:
        store.close()


@pytest.fixture
def keyed(emulator: Emulator, home: Path) -> Iterator[RunningGateway]:
    with running_gateway(emulator, home, emulator.paid, gateway={"require_keys": True}) as running:
        yield running


def _client(gateway: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def _ask(client: openai.OpenAI, model: str = MODEL) -> str:
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content or ""


def test_401_403_and_429_through_the_openai_client(keyed: RunningGateway) -> None:
    narrow = _create(keyed, KeySpec("narrow", models=(MODEL,), limits=KeyLimits(rpm=2)))
    with _client(keyed, narrow) as client:
        assert _ask(client)
        with pytest.raises(openai.PermissionDeniedError) as forbidden:
            _ask(client, "claude-sonnet-4")
        assert forbidden.value.status_code == 403
        assert forbidden.value.body == {
            "message": forbidden.value.body["message"],  # type: ignore[index]
            "type": "permission_error",
            "param": "model",
            "code": "model_not_allowed",
        }
        assert _ask(client)
        with pytest.raises(openai.RateLimitError) as over:
            _ask(client)
    assert over.value.status_code == 429
    assert 1 <= int(over.value.response.headers["retry-after"]) <= 60
    assert over.value.body["type"] == "rate_limit_error"  # type: ignore[index]
    assert "over its limit of 2 requests per minute" in over.value.message
    assert len(keyed.emulator.chat_requests()) == 2  # refused requests never reach Puter

    wrong = new_secret()
    for key in ("sk-anything", wrong):
        with _client(keyed, key) as client, pytest.raises(openai.AuthenticationError) as refused:
            _ask(client)
        assert refused.value.status_code == 401
        assert refused.value.body["type"] == "authentication_error"  # type: ignore[index]
        assert key not in refused.value.response.text
    hello = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    missing = httpx2.post(keyed.url + "/v1/chat/completions", json=hello)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    over_limit = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    by_header = httpx2.post(
        keyed.url + "/v1/chat/completions", json=over_limit, headers={"x-api-key": narrow}
    )
    assert by_header.status_code == 429  # x-api-key is the same key, over the same limit
    # Listing models needs a valid key but spends none of its limit.
    assert httpx2.get(keyed.url + "/v1/models", headers={"x-api-key": narrow}).status_code == 200
    assert httpx2.get(keyed.url + "/v1/models", headers={"x-api-key": wrong}).status_code == 401


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
def test_a_caller_without_a_key_learns_nothing_about_its_body(keyed: RunningGateway, path: str) -> None:
    wrong = {"model": MODEL, "n": 5, "messages": "not a list", "input": 42}
    response = httpx2.post(keyed.url + path, json=wrong)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "missing_api_key"


def test_the_admin_routes(keyed: RunningGateway) -> None:
    boss = _create(keyed, KeySpec("boss", admin=True))
    worker = _create(keyed, KeySpec("worker"))
    url = keyed.url + "/v1/keys"
    as_boss = {"Authorization": f"Bearer {boss}"}

    made = httpx2.post(
        url, headers=as_boss, json={"name": "ci", "rpm": 10, "models": [MODEL], "expires": "30d"}
    )
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    created = made.json()
    secret = created["key"]
    assert secret.startswith("pmk-") and created["name"] == "ci" and created["limits"]["rpm"] == 10
    assert created["models"] == [MODEL] and created["admin"] is False

    listing = httpx2.get(url, headers=as_boss)
    assert listing.status_code == 200
    assert sorted(entry["name"] for entry in listing.json()["data"]) == ["boss", "ci", "worker"]
    for hidden in (secret, boss, worker):
        assert hidden not in listing.text and hidden[4:-4] not in listing.text
    with _client(keyed, secret) as client:
        assert _ask(client)

    duplicate = httpx2.post(url, headers=as_boss, json={"name": "ci"})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["param"] == "name"
    bad = httpx2.post(url, headers=as_boss, json={"name": "x", "rph": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rph"
    bad = httpx2.post(url, headers=as_boss, json={"name": "x", "expires": "someday"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "expires"
    bad = httpx2.post(url, headers=as_boss, json={"name": "x", "colour": "red"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "colour"

    gone = httpx2.delete(url + "/ci", headers=as_boss)
    assert gone.status_code == 200 and gone.json()["revoked"] is True and secret not in gone.text
    assert httpx2.delete(url + "/ci", headers=as_boss).status_code == 404
    with _client(keyed, secret) as client, pytest.raises(openai.AuthenticationError):
        _ask(client)

    assert httpx2.get(url).status_code == 401
    not_admin = httpx2.get(url, headers={"Authorization": f"Bearer {worker}"})
    assert not_admin.status_code == 403
    assert not_admin.json()["error"] == {
        "message": not_admin.json()["error"]["message"],
        "type": "permission_error",
        "param": None,
        "code": "admin_key_required",
    }


def test_with_keys_off_admin_routes_say_how_to_turn_them_on_and_a_sent_key_is_held(
    emulator: Emulator, home: Path
) -> None:
    with running_gateway(emulator, home) as gateway:
        refused = httpx2.get(gateway.url + "/v1/keys")
        assert refused.status_code == 403
        assert "require_keys = true" in refused.json()["error"]["message"]
        assert "--admin" in refused.json()["error"]["message"]
        with _client(gateway, "sk-anything") as client:
            assert _ask(client)  # keys off: a dummy key is no key
        once = _create(gateway, KeySpec("once", limits=KeyLimits(rpm=1)))
        with _client(gateway, once) as client:
            assert _ask(client)
            with pytest.raises(openai.RateLimitError):
                _ask(client)
        boss = _create(gateway, KeySpec("boss", admin=True))
        listing = httpx2.get(gateway.url + "/v1/keys", headers={"x-api-key": boss})
        assert listing.status_code == 200


# -- two gateway processes ------------------------------------------------------------------


@pytest.mark.slow
def test_keys_and_limits_hold_across_two_gateway_processes(emulator: Emulator, home: Path) -> None:
    paths = resolve_paths({"PUTER_MCP_HOME": str(home)})
    save_accounts(paths, emulator.paid, emulator.free)
    env = script_env(home, emulator, PUTER_MCP_GATEWAY_REQUIRE_KEYS="1")
    gateways: list[GatewayProcess] = []
    try:
        for _ in range(2):
            gateways.append(start_gateway_process(env))
        urls = [gateway.url + "/v1" for gateway in gateways]
        assert urls[0] != urls[1]
        created = keys_cli(env, "create", "shared", "--rpm", "10")
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip()
        assert "only time the key is shown" in created.stderr

        def ask(number: int) -> tuple[int, str, str | None]:
            """(status, message, Retry-After) of one request, to the two gateways in turn."""
            with openai.OpenAI(base_url=urls[number % 2], api_key=secret, max_retries=0) as client:
                try:
                    _ask(client)
                except openai.RateLimitError as refused:
                    return 429, refused.message, refused.response.headers.get("retry-after")
            return 200, "", None

        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(ask, range(30)))
        assert [status for status, _, _ in outcomes].count(200) == 10, outcomes
        refusals = [(message, wait) for status, message, wait in outcomes if status == 429]
        assert len(refusals) == 20, outcomes
        for message, wait in refusals:
            assert "over its limit of 10 requests per minute" in message
            assert wait is not None and 1 <= int(wait) <= 60
        assert len(emulator.chat_requests()) == 10

        listed = keys_cli(env, "list")
        assert "shared" in listed.stdout and secret not in listed.stdout
        assert_a_new_key_reaches_every_gateway(gateways, create_env=env, revoke_env=env)
    finally:
        for gateway in gateways:
            gateway.stop()


def test_a_key_never_reaches_a_log_line() -> None:
    secret = new_secret()
    record = logging.LogRecord(
        "t", logging.WARNING, __file__, 1, "a client sent %s in %r", (secret, {"k": secret}), None
    )
    RedactingFilter().filter(record)
    logged = record.getMessage()
    assert secret not in logged and secret[4:-4] not in logged
    assert f"pmk-…{secret[-4:]}" in logged
