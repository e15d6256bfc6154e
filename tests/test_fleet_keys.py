"""The gateway's API keys for a fleet: in Redis when ``state`` is a ``redis://`` URL.

The key store contract over the SQLite store and the Redis store alike; the limiter over the
`limits` library's Redis storage (exact counts, a refusal counts in no window, two connections
never both take the last place); and three `puter-mcp gateway` processes on one Redis (a real
redis-server the tests start, never a fake): a key created with the CLI works on all three,
revoked stops on all three, and ``--rpm 10`` gives exactly 10 successes out of 30 requests spread
over them.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import redis

from puter_mcp.cli import main
from puter_mcp.gateway.failures import GatewayError
from puter_mcp.gateway.keyplace import keys_in_redis, open_key_store, where_keys_live
from puter_mcp.gateway.keys import KeyRing
from puter_mcp.gateway.keystore import (
    DuplicateKeyName,
    KeyLimits,
    KeySpec,
    KeyStore,
    KeyStoreError,
    SQLiteKeyStore,
    UnknownKeyName,
    hash_secret,
    new_secret,
)
from puter_mcp.gateway.limiter import KeyLimiter
from puter_mcp.gateway.redis_keys import RedisKeyStore, RedisLimitStorage
from puter_mcp.settings import Settings, resolve_paths
from tests.helpers import (
    SCRIPT,
    Emulator,
    GatewayProcess,
    RedisServer,
    _free_loopback_port,
    assert_a_new_key_reaches_every_gateway,
    keys_cli,
    save_accounts,
    script_env,
    start_gateway_process,
)

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "redis"])
async def key_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyStore]:
    """Each key store in turn: they must behave alike (the key store contract)."""
    made: KeyStore
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisKeyStore(
            server.url, prefix=request.getfixturevalue("redis_prefix"), clock=lambda: NOW + 7200
        )
    else:
        made = SQLiteKeyStore(tmp_path / "keys.db")
    try:
        yield made
    finally:
        await made.aclose()


# -- the key store contract -----------------------------------------------------------------


async def test_create_find_list_and_revoke(key_store: KeyStore) -> None:
    spec = KeySpec("ci", limits=KeyLimits(rpm=5, rpd=100), models=("gpt-5-nano",), expires=NOW + 86400)
    first, first_secret = await key_store.create(spec, now=NOW)
    found = await key_store.find(hash_secret(first_secret))
    assert found == first
    assert found.limits == KeyLimits(rpm=5, rpd=100) and found.models == ("gpt-5-nano",)
    assert found.expires == NOW + 86400 and not found.admin and found.revoked is None
    with pytest.raises(DuplicateKeyName, match="already exists"):
        await key_store.create(KeySpec("ci"), now=NOW)
    admin, _ = await key_store.create(KeySpec("admin", admin=True), now=NOW + 1)
    assert [key.name for key in await key_store.list()] == ["admin", "ci"]
    assert admin.admin and admin.models is None and admin.limits == KeyLimits()

    revoked = await key_store.revoke("ci", now=NOW + 2)
    assert revoked.id == first.id
    with pytest.raises(UnknownKeyName):
        await key_store.revoke("ci", now=NOW + 3)
    with pytest.raises(UnknownKeyName):
        await key_store.revoke("never-made", now=NOW + 3)
    again, _ = await key_store.create(KeySpec("ci"), now=NOW + 4)
    assert again.id != first.id
    assert [key.id for key in await key_store.list()] == [admin.id, again.id]
    assert len(await key_store.list(include_revoked=True)) == 3
    after = await key_store.find(hash_secret(first_secret))
    assert after is not None and after.revoked == NOW + 2
    assert await key_store.find(hash_secret(new_secret())) is None


async def test_uses_are_counted_per_name_and_hour(key_store: KeyStore) -> None:
    key, secret = await key_store.create(KeySpec("ci"), now=NOW)
    other, _ = await key_store.create(KeySpec("other"), now=NOW)
    await key_store.record_use(key, now=NOW + 10, admitted=True)
    await key_store.record_use(key, now=NOW + 20, admitted=False)
    await key_store.record_use(key, now=NOW + 3600, admitted=True)  # the next hour
    await key_store.record_use(other, now=NOW + 30, admitted=True)
    found = await key_store.find(hash_secret(secret))
    assert found is not None and found.last_used == NOW + 3600  # a refusal is no use
    rows = {row.name: (row.requests, row.rate_limited) for row in await key_store.usage(NOW - 60)}
    assert rows == {"ci": (2, 1), "other": (1, 0)}
    later = {row.name: (row.requests, row.rate_limited) for row in await key_store.usage(NOW + 3600)}
    assert later == {"ci": (1, 0)}


async def test_a_secret_is_never_stored_in_redis(redis_server: RedisServer, redis_prefix: str) -> None:
    store = RedisKeyStore(redis_server.url, prefix=redis_prefix)
    try:
        _record, secret = await store.create(KeySpec("ci"), now=NOW)
    finally:
        await store.aclose()
    client = redis.Redis.from_url(redis_server.url)
    try:
        keys = list(client.scan_iter(match=f"{redis_prefix}*"))
        dumped = b"".join(
            key + b"".join(k + v for k, v in client.hgetall(key).items())
            for key in keys
            if client.type(key) == b"hash"
        )
        assert all(key.startswith(f"{redis_prefix}{{keys}}:".encode()) for key in keys)
    finally:
        client.close()
    assert secret.encode() not in dumped and secret[4:-4].encode() not in dumped
    assert hash_secret(secret).encode() in dumped


async def test_a_redis_that_does_not_answer_is_a_key_store_error() -> None:
    store = RedisKeyStore(
        f"redis://:hunter2secret@127.0.0.1:{_free_loopback_port()}/0", shown_url="Redis at X"
    )
    try:
        with pytest.raises(KeyStoreError, match="does not answer") as refused:
            await store.find(hash_secret(new_secret()))
    finally:
        await store.aclose()
    assert "hunter2secret" not in str(refused.value)


def test_the_keys_command_names_an_unreachable_redis_without_its_password(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PUTER_MCP_STATE", f"redis://:hunter2secret@127.0.0.1:{_free_loopback_port()}/0")
    assert main(["keys", "list"]) == 1
    said = capsys.readouterr().err
    assert "does not answer" in said and "127.0.0.1" in said
    assert "hunter2secret" not in said
    assert not (home / "data" / "keys.db").exists()


# -- the limiter over the library's Redis storage -------------------------------------------


async def test_the_redis_limiter_admits_exactly_the_limit_and_a_refusal_counts_nowhere(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    storage = RedisLimitStorage(redis_server.url, prefix=redis_prefix)
    limiter = KeyLimiter(storage)
    try:
        # rpm 3, rph 5: the hour refuses the 6th request, which must not use a minute place.
        limits = KeyLimits(rpm=3, rph=5)
        verdicts = [await limiter.admit("k1", limits) for _ in range(4)]
        assert [v.admitted for v in verdicts] == [True, True, True, False]
        assert verdicts[3].label == "rpm" and verdicts[3].retry_after is not None
        assert 0 < verdicts[3].retry_after <= 60
        hourly = KeyLimits(rph=2, rpm=5)
        assert [(await limiter.admit("k2", hourly)).admitted for _ in range(3)] == [True, True, False]
        refused = await limiter.admit("k2", hourly)
        assert not refused.admitted and refused.label == "rph"
        # The minute window holds only the 2 admitted requests: the refusals were given back.
        minute = await storage.get_moving_window("LIMITER/k2/5/1/minute", 5, 60)
        assert minute[1] == 2
    finally:
        await storage.aclose()


async def test_two_connections_to_one_redis_share_a_limit_exactly(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    storages = [RedisLimitStorage(redis_server.url, prefix=redis_prefix) for _ in range(2)]
    limiters = [KeyLimiter(storage) for storage in storages]
    try:
        limits = KeyLimits(rpm=10, rph=12)
        verdicts = await asyncio.gather(*(limiters[n % 2].admit("shared", limits) for n in range(30)))
        assert sum(v.admitted for v in verdicts) == 10
    finally:
        for storage in storages:
            await storage.aclose()


# -- which store the settings pick ----------------------------------------------------------


async def test_the_settings_pick_the_store(tmp_path: Path) -> None:
    paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path)})
    plain = Settings()
    assert not keys_in_redis(plain)
    assert where_keys_live(plain, paths) == str(paths.data_dir / "keys.db")
    fleet = Settings(state="redis://:sekrit-pass@127.0.0.1:6379/2", state_prefix="team:")
    assert keys_in_redis(fleet)
    shown = where_keys_live(fleet, paths)
    assert "sekrit-pass" not in shown and "127.0.0.1:6379/2" in shown and "team:" in shown
    for settings, kind in ((plain, SQLiteKeyStore), (fleet, RedisKeyStore)):
        opened = open_key_store(settings, paths)
        assert isinstance(opened, kind)
        await opened.aclose()


async def test_the_ring_over_redis_admits_and_refuses(
    redis_server: RedisServer, redis_prefix: str, tmp_path: Path
) -> None:
    paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path)})
    settings = Settings(state=redis_server.url, state_prefix=redis_prefix)
    ring = KeyRing.for_settings(settings, paths, required=True)
    try:
        _key, secret = await ring.create(KeySpec("ci", limits=KeyLimits(rpm=1)))
        caller = await ring.admit(secret, "gpt-5-nano")
        assert caller.key == "ci"
        with pytest.raises(GatewayError) as refused:
            await ring.admit(secret, "gpt-5-nano")
        assert refused.value.status == 429
        await ring.revoke("ci")
        with pytest.raises(GatewayError) as gone:
            await ring.admit(secret, "gpt-5-nano")
        assert gone.value.status == 401
        usage = await ring.usage(ring.now() - 60)
        assert [(u.key, u.requests, u.rate_limited) for u in usage] == [("ci", 1, 1)]
    finally:
        await ring.aclose()
    assert not (paths.data_dir / "keys.db").exists()  # nothing of the keys on this machine


# -- three gateway processes on one Redis ----------------------------------------------------


@pytest.mark.slow
def test_keys_and_limits_hold_across_three_gateways_on_one_redis(
    emulator: Emulator, tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    # Three homes: nothing on disk is shared, only the Redis.
    homes = [tmp_path / "one", tmp_path / "two", tmp_path / "three"]
    envs = []
    for home in homes:
        save_accounts(resolve_paths({"PUTER_MCP_HOME": str(home)}), emulator.paid, emulator.free)
        envs.append(
            script_env(
                home,
                emulator,
                PUTER_MCP_GATEWAY_REQUIRE_KEYS="1",
                PUTER_MCP_STATE=redis_server.url,
                PUTER_MCP_STATE_PREFIX=redis_prefix,
            )
        )
    gateways: list[GatewayProcess] = []
    try:
        for env in envs:
            gateways.append(start_gateway_process(env))
        urls = [gateway.url + "/v1" for gateway in gateways]
        created = keys_cli(envs[0], "create", "shared", "--rpm", "10")
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip()

        def ask(number: int) -> tuple[int, str]:
            with openai.OpenAI(base_url=urls[number % 3], api_key=secret, max_retries=0) as client:
                try:
                    client.chat.completions.create(
                        model="gpt-5-nano", messages=[{"role": "user", "content": "hi"}]
                    )
                except openai.RateLimitError as refused:
                    return 429, refused.message
            return 200, ""

        with ThreadPoolExecutor(max_workers=6) as pool:
            outcomes = list(pool.map(ask, range(30)))
        statuses = [status for status, _ in outcomes]
        assert statuses.count(200) == 10 and statuses.count(429) == 20, outcomes
        for status, message in outcomes:
            assert status == 200 or "over its limit of 10 requests per minute" in message
        assert len(emulator.chat_requests()) == 10

        # The second home lists the key the first created: the list is the fleet's.
        listed = keys_cli(envs[1], "list")
        assert "shared" in listed.stdout and secret not in listed.stdout
        assert not (homes[0] / "data" / "keys.db").exists()
        # Created from the second home, revoked from the first, while all run.
        assert_a_new_key_reaches_every_gateway(gateways, create_env=envs[1], revoke_env=envs[0])

        stats = subprocess.run(
            [SCRIPT, "stats", "--json"], env=envs[1], capture_output=True, text=True, timeout=60
        )
        assert stats.returncode == 0, stats.stderr
        assert '"shared"' in stats.stdout
    finally:
        for gateway in gateways:
            gateway.stop()
