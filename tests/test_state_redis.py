"""The Redis state store against a real redis-server started by the tests (never a fake, never
the system's service): replicas racing for places, leases, the capped attempt stream, key
prefixes, Redis going away and coming back, and the settings, doctor and CLI around it.

The store contract itself (tests/test_state_store.py and the other `store` tests) runs over the
Redis store through the `store` fixture's "redis" parameter."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from puter_mcp.cli import main
from puter_mcp.core import Backend, ChatCall
from puter_mcp.core.stores import check_shared_store, open_store
from puter_mcp.core.wiring import engine_of
from puter_mcp.doctor import _check_state_db
from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing.state import (
    Attempt,
    Cooldown,
    CooldownKey,
    FallbackStateStore,
    Scope,
    Slot,
    SlotRefusal,
    SlotRequest,
    StateStore,
    WindowUsage,
    open_state_store,
)
from puter_mcp.routing.state.redis import REDIS_STORE_ERRORS, RedisStateStore
from puter_mcp.settings import ConfigError, load_settings, resolve_paths
from tests.helpers import Emulator, RedisServer, save_accounts, settings_for

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


async def take(
    store: StateStore, account: str, slot_id: str, now: float, **limits: float
) -> Slot | SlotRefusal:
    return await store.acquire_slot(
        account,
        slot_id=slot_id,
        now=now,
        window=float(limits.get("window", 10.5)),
        max_requests=int(limits.get("max_requests", 5)),
        max_in_flight=int(limits.get("max_in_flight", 2)),
        lease_until=now + float(limits.get("lease", 900.0)),
    )


def rate_limit(account: str, *, until: float, level: int = 1) -> Cooldown:
    return Cooldown(Scope.ACCOUNT, account, None, FailureKind.RATE_LIMITED, until=until, level=level)


@pytest.fixture
async def replicas(redis_server: RedisServer, redis_prefix: str) -> AsyncIterator[list[RedisStateStore]]:
    """Three stores on one Redis, each with its own connections, as three replicas have."""
    made = [RedisStateStore(redis_server.url, prefix=redis_prefix) for _ in range(3)]
    yield made
    for store in made:
        await store.aclose()


# -- replicas sharing one Redis -------------------------------------------------------------


async def test_two_replicas_racing_for_the_last_place_never_both_get_it(
    replicas: list[RedisStateStore],
) -> None:
    first, second, _ = replicas
    for round_ in range(200):
        account = f"acct-{round_}"
        # One place left in flight (and one in the window, on odd rounds).
        assert isinstance(await take(first, account, f"{round_}-held", T0, max_in_flight=2), Slot)
        limits = {"max_in_flight": 2} if round_ % 2 else {"max_in_flight": 9, "max_requests": 2}
        answers = await asyncio.gather(
            take(first, account, f"{round_}-a", T0 + 0.5, **limits),
            take(second, account, f"{round_}-b", T0 + 0.5, **limits),
        )
        winners = [answer for answer in answers if isinstance(answer, Slot)]
        assert len(winners) == 1, (round_, answers)
        assert await first.window_usage(account, now=T0 + 0.5, window=10.5) == WindowUsage(2, 2)


async def test_exactly_one_replica_claims_a_due_probe(replicas: list[RedisStateStore]) -> None:
    down = Cooldown(Scope.MODEL, None, "m", FailureKind.MODEL_DOWN, until=math.inf, probe_at=T0, since=T0)
    await replicas[0].update_cooldown(down.key, lambda _old: down)
    claims = await asyncio.gather(
        *(
            store.claim_probe(down.key, now=T0 + 1, lease_until=T0 + 60)
            for store in replicas
            for _ in range(5)
        )
    )
    assert claims.count(True) == 1
    (stored,) = await replicas[2].list_cooldowns()
    assert stored.probe_claimed_until == T0 + 60


async def test_a_cooldown_escalated_by_two_replicas_at_once_keeps_both_steps(
    replicas: list[RedisStateStore],
) -> None:
    # Each replica computes its change from what it last read; a stale copy is read again.
    key = CooldownKey(Scope.ACCOUNT, "a", None, FailureKind.RATE_LIMITED)

    def escalate(old: Cooldown | None) -> Cooldown:
        level = 1 if old is None else old.level + 1
        return rate_limit("a", until=max(T0 + 10 * level, old.until if old else 0), level=level)

    for store in replicas:
        await store.list_cooldowns()  # every copy read before anyone writes
    await asyncio.gather(*(store.update_cooldown(key, escalate) for store in replicas for _ in range(10)))
    (final,) = await replicas[0].list_cooldowns()
    assert final.level == 30
    assert final.until == T0 + 300


async def test_a_judge_sees_a_cooldown_another_replica_set_since_its_last_read(
    replicas: list[RedisStateStore],
) -> None:
    first, second, _ = replicas
    seen: list[list[Cooldown]] = []

    class Take:
        take_slot = True
        claim = None
        claim_until = 0.0

    def judge(cooldowns: list[Cooldown]) -> Take:
        seen.append(cooldowns)
        return Take()

    request = SlotRequest("s1", T0, 10.5, 5, 2, T0 + 900)
    await first.acquire("a", "m", judge=judge, slot=request)
    assert seen[-1] == []
    blocked = rate_limit("a", until=T0 + 30)
    await second.update_cooldown(blocked.key, lambda _old: blocked)
    await first.acquire("a", "m", judge=judge, slot=SlotRequest("s2", T0 + 1, 10.5, 5, 2, T0 + 900))
    assert seen[-1] == [blocked]


# -- leases ---------------------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from puter_mcp.routing.state.redis import RedisStateStore

    async def hold():
        store = RedisStateStore(sys.argv[1], prefix=sys.argv[2])
        now = float(sys.argv[3])
        for slot_id in ("x1", "x2"):
            await store.acquire_slot("a", slot_id=slot_id, now=now, window=10.5, max_requests=9,
                                     max_in_flight=2, lease_until=now + 120)
        print("holding", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(hold())
    """
)


async def test_a_killed_replicas_places_come_back_when_their_lease_ends(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    holder = await anyio.open_process(
        [sys.executable, "-c", _HOLDER, redis_server.url, redis_prefix, repr(T0)], stderr=None
    )
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.receive()).startswith(b"holding")
    finally:
        holder.send_signal(signal.SIGKILL)  # no goodbye: its slots stay in Redis
        await holder.wait()
    store = RedisStateStore(redis_server.url, prefix=redis_prefix)
    try:
        # The dead replica's requests hold the account's two places until their lease ends...
        assert await store.window_usage("a", now=T0 + 119, window=10.5) == WindowUsage(0, 2)
        refused = await take(store, "a", "mine", T0 + 119, max_requests=9, lease=60)
        assert isinstance(refused, SlotRefusal) and refused.in_flight_full
        # ...and not a moment longer.
        assert isinstance(await take(store, "a", "mine", T0 + 120, max_requests=9, lease=60), Slot)
        # Every key holding them expires on its own too (lease + the window's history).
        direct = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            keys = [key async for key in direct.scan_iter(match=f"{redis_prefix}*")]
            assert keys
            for key in keys:
                if key.endswith(("cooldowns:version", ":last-used", ":cooldowns")):
                    continue
                assert 0 < await direct.pttl(key) <= (120 + 60) * 1000, key
        finally:
            await direct.aclose()
    finally:
        await store.aclose()


# -- the attempt stream, prefixes, origins ----------------------------------------------------


async def test_the_attempt_stream_is_capped_and_read_newest_first(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    store = RedisStateStore(redis_server.url, prefix=redis_prefix, attempts_kept=100)
    try:
        for batch in range(10):
            for i in range(100):
                store.log_attempt(Attempt(T0 + batch * 100 + i, "a", "m", None, float(i)))
            await store.release_slot("none", now=T0, counted=True)  # a write: takes the queue
        direct = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            (stream,) = [key async for key in direct.scan_iter(match=f"{redis_prefix}*attempts")]
            # MAXLEN ~ trims whole stream nodes (100 entries each by default): about the cap.
            assert 100 <= await direct.xlen(stream) <= 200
        finally:
            await direct.aclose()
        assert [a.time for a in await store.recent_attempts(3)] == [T0 + 999, T0 + 998, T0 + 997]
        assert [a.time for a in await store.attempts_since(T0 + 996)] == [T0 + 996 + i for i in range(4)]
    finally:
        await store.aclose()


async def test_prefixes_and_origins_keep_deployments_apart(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    team_a = RedisStateStore(redis_server.url, prefix=redis_prefix + "a:")
    team_a_again = RedisStateStore(redis_server.url, prefix=redis_prefix + "a:")
    team_b = RedisStateStore(redis_server.url, prefix=redis_prefix + "b:")
    other_puter = RedisStateStore(redis_server.url, prefix=redis_prefix + "a:", origin="http://127.0.0.1:9")
    stores = (team_a, team_a_again, team_b, other_puter)
    try:
        blocked = rate_limit("acct", until=T0 + 30)
        await team_a.update_cooldown(blocked.key, lambda _old: blocked)
        assert isinstance(await take(team_a, "acct", "s1", T0, max_in_flight=1), Slot)
        await team_a.record_attempt(Attempt(T0, "acct", "m", None, 5.0))

        assert await team_a_again.list_cooldowns() == [blocked]
        assert isinstance(await take(team_a_again, "acct", "s2", T0, max_in_flight=1), SlotRefusal)
        assert len(await team_a_again.recent_attempts()) == 1
        for apart in (team_b, other_puter):
            assert await apart.list_cooldowns() == []
            assert isinstance(await take(apart, "acct", "s3", T0, max_in_flight=1), Slot)
            assert await apart.recent_attempts() == []
            assert await apart.last_used() == {"acct": T0}
    finally:
        for store in stores:
            await store.aclose()


# -- Redis going away and coming back -----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


async def test_redis_killed_the_replica_answers_from_memory_and_shares_again_once_it_is_back(
    own_redis: RedisServer, redis_prefix: str
) -> None:
    warnings: list[str] = []
    clock = Clock()
    store = FallbackStateStore(
        RedisStateStore(own_redis.url, prefix=redis_prefix),
        on_warning=warnings.append,
        errors=REDIS_STORE_ERRORS,
        name=f"the Redis state store at {own_redis.url}",
        retry_after=5.0,
        clock=clock,
    )
    other = RedisStateStore(own_redis.url, prefix=redis_prefix)
    try:
        assert isinstance(await take(store, "a", "s1", T0), Slot)
        assert not store.degraded

        own_redis.stop()
        blocked = rate_limit("a", until=T0 + 30)
        assert await store.update_cooldown(blocked.key, lambda _old: blocked) == blocked  # no error
        assert store.degraded
        assert store.describe().startswith("memory (")
        assert await store.list_cooldowns() == [blocked]
        assert isinstance(await take(store, "a", "s2", T0 + 1), Slot)
        (warning,) = warnings
        assert own_redis.url in warning and "in memory until it answers again" in warning

        own_redis.start()  # the same port, empty: a Redis restarted without persistence
        clock.now = 4.9
        await store.list_cooldowns()
        assert store.degraded  # not tried again before its time
        assert len(warnings) == 1  # said once
        clock.now = 5.0
        assert await store.list_cooldowns() == [blocked]  # what it learned meanwhile was written there
        assert not store.degraded
        assert "answers again" in warnings[1]
        assert await other.list_cooldowns() == [blocked]
        lifted = rate_limit("a", until=T0)
        await other.update_cooldown(blocked.key, lambda _old: lifted)
        assert await store.list_cooldowns() == [lifted]  # shared again, both ways
    finally:
        await store.aclose()
        await other.aclose()


async def test_the_attempts_made_while_redis_was_down_join_the_shared_log_when_it_is_back(
    own_redis: RedisServer, redis_prefix: str
) -> None:
    clock = Clock()
    store = FallbackStateStore(
        RedisStateStore(own_redis.url, prefix=redis_prefix),
        on_warning=lambda _warning: None,
        errors=REDIS_STORE_ERRORS,
        retry_after=5.0,
        clock=clock,
    )
    other = RedisStateStore(own_redis.url, prefix=redis_prefix)
    try:
        own_redis.stop()
        slot = await take(store, "a", "s1", T0)  # in memory: Redis is gone
        assert isinstance(slot, Slot) and store.degraded
        during = Attempt(time=T0 + 1, account="a", model="m", kind=None, latency_ms=5.0, request_id="during")
        store.log_attempt(during)
        await store.settle(slot.id, now=T0 + 1, counted=True)
        own_redis.start()
        clock.now = 5.0
        await store.list_cooldowns()  # comes back
        assert not store.degraded
        slot = await take(store, "a", "s2", T0 + 2)
        assert isinstance(slot, Slot)
        after = Attempt(time=T0 + 2, account="a", model="m", kind=None, latency_ms=5.0, request_id="after")
        store.log_attempt(after)
        await store.settle(slot.id, now=T0 + 2, counted=True)
        # Another replica's statistics see both: the outage's attempt was not left behind.
        assert [a.request_id for a in await other.attempts_since(T0)] == ["during", "after"]
        assert [a.request_id for a in await store.attempts_since(T0)] == ["during", "after"]
    finally:
        await store.aclose()
        await other.aclose()


async def test_a_redis_that_stops_answering_times_out_into_memory_and_gets_its_releases_back(
    own_redis: RedisServer, redis_prefix: str
) -> None:
    # SIGSTOP: connections open but nothing answers (a partition, a stuck server): timeouts.
    warnings: list[str] = []
    clock = Clock()
    store = FallbackStateStore(
        RedisStateStore(own_redis.url, prefix=redis_prefix, socket_timeout=0.2),
        on_warning=warnings.append,
        errors=REDIS_STORE_ERRORS,
        retry_after=5.0,
        clock=clock,
    )
    other = RedisStateStore(own_redis.url, prefix=redis_prefix)
    assert own_redis.process is not None
    try:
        assert isinstance(await take(store, "a", "s1", T0, max_in_flight=1), Slot)
        own_redis.process.send_signal(signal.SIGSTOP)
        try:
            assert await store.list_cooldowns() == []  # times out, answered from memory
            assert store.degraded and "Timeout" in warnings[0]
            # Degraded and not yet due for a new try: this goes to memory without a word to Redis.
            await store.release_slot("s1", now=T0 + 1, counted=True)
        finally:
            own_redis.process.send_signal(signal.SIGCONT)
        # Redis kept the slot: the release made meanwhile has not reached it yet.
        assert isinstance(await take(other, "a", "o1", T0 + 2, max_in_flight=1), SlotRefusal)
        clock.now = 5.0
        await store.list_cooldowns()
        assert not store.degraded
        assert isinstance(await take(other, "a", "o1", T0 + 2, max_in_flight=1), Slot)
    finally:
        await store.aclose()
        await other.aclose()


# -- settings, the factory, the engine, doctor, the CLI --------------------------------------


def test_the_state_setting_takes_redis_urls_and_never_shows_their_password(tmp_path: Path) -> None:
    paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path)})
    env = {
        "PUTER_MCP_STATE": "rediss://:hunter2-pass@redis.internal:6380/3",
        "PUTER_MCP_STATE_PREFIX": "team:",
    }
    settings, _ = load_settings(paths=paths, env=env)
    assert settings.state.startswith("rediss://") and settings.state_prefix == "team:"
    for wrong in (
        "redis://:hunter2-pass@/0",
        "redis://:hunter2-pass@host/zero",
        "redis://:hunter2-pass@host:x/0",
    ):
        with pytest.raises(ConfigError) as raised:
            load_settings(paths=paths, env={"PUTER_MCP_STATE": wrong})
        assert "hunter2" not in str(raised.value) and "****" in str(raised.value)


async def test_a_chat_through_the_engine_shares_its_attempts_and_costs_two_round_trips(
    emulator: Emulator, home: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    settings, paths = settings_for(emulator, home, state=redis_server.url, state_prefix=redis_prefix)
    save_accounts(paths, emulator.paid)
    sent: list[str] = []
    async with Backend(settings, paths) as backend:
        store = engine_of(backend).store
        assert isinstance(store, FallbackStateStore)
        assert store.describe() == f"{redis_server.url} (prefix {redis_prefix})"
        await backend.chat(ChatCall.build(message="hello 1", model="gpt-5-nano"))
        # Every command the store's client sends, from the second chat on.
        client = store._primary._redis
        send = client.execute_command

        async def counted(*args: Any, **options: Any) -> Any:
            sent.append(str(args[0]))
            return await send(*args, **options)

        client.execute_command = counted
        outcome = await backend.chat(ChatCall.build(message="hello 2", model="gpt-5-nano"))
        assert outcome.text
        client.execute_command = send
        report = await backend.usage_stats(since=0.0)
        assert report.covers.startswith("every replica sharing this Redis store")
    assert sent == ["EVALSHA", "EVALSHA"]  # acquire, then settle with the attempt
    replica = RedisStateStore(redis_server.url, prefix=redis_prefix, origin=settings.api_origin)
    try:
        attempts = await replica.recent_attempts()
        assert [(a.kind, a.account) for a in attempts] == [(None, emulator.paid.uuid)] * 2
    finally:
        await replica.aclose()


async def test_a_password_comes_from_the_url_or_the_environment(
    tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = RedisServer(tmp_path / "redis", password="s3cret-redis-pass").start()
    try:
        paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path)})
        with_url, _ = load_settings(
            paths=paths, env={"PUTER_MCP_STATE": f"redis://:s3cret-redis-pass@127.0.0.1:{server.port}/0"}
        )
        plain, _ = load_settings(paths=paths, env={"PUTER_MCP_STATE": server.url})
        monkeypatch.delenv("PUTER_MCP_REDIS_PASSWORD", raising=False)
        refused = await check_shared_store(plain, paths)
        assert refused.status == "unreadable" and "s3cret" not in refused.detail
        for settings, password in ((with_url, None), (plain, "s3cret-redis-pass")):
            if password:
                monkeypatch.setenv("PUTER_MCP_REDIS_PASSWORD", password)
            store = open_store(settings, paths, on_warning=pytest.fail)
            try:
                assert "s3cret" not in store.describe()
                await store.touch("a", T0)
                assert await store.last_used() == {"a": T0}
            finally:
                await store.aclose()
            found = await check_shared_store(settings, paths)
            assert found.status == "ok", found.detail
    finally:
        server.stop()


async def test_doctor_reports_the_redis_store_reachable_or_not(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path)})
    settings, _ = load_settings(paths=paths, env={"PUTER_MCP_STATE": redis_server.url})
    check = await _check_state_db(settings, paths)
    assert check.status == "ok"
    assert "Redis 7" in check.detail or "Redis " in check.detail
    assert "round trip" in check.detail and "ms" in check.detail
    closed = RedisServer(tmp_path / "closed").start()
    closed.stop()  # a port where nothing listens any more
    gone, _ = load_settings(
        paths=paths, env={"PUTER_MCP_STATE": f"redis://:pw-1234@127.0.0.1:{closed.port}/0"}
    )
    check = await _check_state_db(gone, paths)
    assert check.status == "fail"
    assert "cannot be reached" in check.detail and "pw-1234" not in check.detail
    assert "PUTER_MCP_REDIS_PASSWORD" in (check.fix or "")


def test_config_masks_the_redis_password(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PUTER_MCP_STATE", "redis://user:a-redis-password@127.0.0.1:6379/0")
    assert main(["config", "--json"]) == 0
    out = capsys.readouterr().out
    assert "a-redis-password" not in out
    assert json.loads(out)["settings"]["state"] == "redis://user:****@127.0.0.1:6379/0"


async def test_the_fallbacks_warning_names_redis_without_its_password(tmp_path: Path) -> None:
    closed = RedisServer(tmp_path / "closed").start()
    closed.stop()  # nothing listens there any more
    warnings: list[str] = []
    store = open_state_store(f"redis://:pw-never-shown@127.0.0.1:{closed.port}/0", on_warning=warnings.append)
    try:
        await store.touch("a", T0)  # answered from memory
        assert await store.last_used() == {"a": T0}
        (warning,) = warnings
        assert f"redis://:****@127.0.0.1:{closed.port}/0" in warning
        assert "pw-never-shown" not in warning + store.describe()
    finally:
        await store.aclose()
