"""Three `puter-mcp gateway` processes on one real Redis: what one replica learns, the others
honour (issue 12, docs/deploy.md "Running several replicas").

Every test starts three gateway subprocesses sharing one redis-server of its own (loopback, a
free port, nothing saved: `tests.helpers.RedisServer`) and one emulator, and spreads requests
over the three. What the product did is read in the emulator's log (`Emulator.chat_requests`),
never in the product's own account of itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx2
import openai
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from puter_mcp.core.wiring import build_engine
from puter_mcp.emulator import Fault
from puter_mcp.emulator.state import TIER_LIMITS, Tier
from puter_mcp.emulator.state import Account as EmulatedAccount
from puter_mcp.routing.state import MemoryStateStore
from puter_mcp.settings import ConfigError, load_settings, resolve_paths
from tests.helpers import (
    Emulator,
    GatewayProcess,
    RedisServer,
    save_accounts,
    script_env,
    settings_for,
    start_gateway_process,
)

MODEL = "gpt-5-nano"
OTHER_MODEL = "gpt-5-mini"
REPLICAS = 3
OFF_REDIS = "keeps cooldowns and pacing in memory"
"""What a replica logs once when Redis stops answering (docs/state.md, "When Redis is down")."""
BACK_ON_REDIS = "answers again; this process shares"
"""What it logs when Redis answers again."""
SLOT_LEASE = 8.0
"""Seconds (`PUTER_MCP_SLOT_LEASE`): long enough that a test reads a killed replica's slots
before they lapse, short enough that the next request waits for them within `max_wait`."""
MAX_WAIT = 30.0
"""`PUTER_MCP_MAX_WAIT`, above `SLOT_LEASE`: a request may wait for a lapsed lease."""


@dataclass
class Fleet:
    replicas: list[GatewayProcess]
    redis: RedisServer
    prefix: str
    emulator: Emulator

    def client(self, number: int) -> openai.OpenAI:
        """An OpenAI client of replica `number % 3`: the round-robin a proxy would do."""
        return openai.OpenAI(
            base_url=self.replicas[number % len(self.replicas)].url + "/v1", api_key="unused", max_retries=0
        )

    def redis_client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis.port, socket_timeout=5)

    def running_slots(self) -> int:
        """Slots whose lease has not ended yet, over every account, as Redis holds them."""
        with self.redis_client() as client:
            now = time.time()
            return sum(
                int(client.zcount(key, f"({now}", "+inf"))
                for key in client.scan_iter(match=f"{self.prefix}*slots:*:running")
            )


FleetFactory = Callable[[EmulatedAccount], Fleet]
"""Starts three replicas signed in to one account (the `fleet_of` fixture)."""


def _ask(client: openai.OpenAI, model: str = MODEL) -> int:
    """The HTTP status of one chat request (200 when it was answered)."""
    with client:
        try:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        except openai.APIStatusError as refused:
            return refused.status_code
    return 200


def _product_429s(emulator: Emulator) -> list[object]:
    """429s the emulator sent because of the product's own pace (no scripted fault)."""
    return [r for r in emulator.chat_requests() if r.status == 429 and r.fault is None]


@pytest.fixture
def fleet_of(emulator: Emulator, home: Path, tmp_path: Path) -> Iterator[FleetFactory]:
    """`fleet_of(account)`: three replicas signed in to `account` only (a read-only accounts
    file, a home each), on a Redis of the test's own (a test may stop it), with a short slot
    lease."""
    server = RedisServer(tmp_path / "redis").start()
    started: list[GatewayProcess] = []

    def make(account: EmulatedAccount) -> Fleet:
        # As deployed (docs/deploy.md): one read-only accounts file for all, a home of its own
        # for each replica, so that nothing is shared but through Redis.
        signed_in = resolve_paths({"PUTER_MCP_HOME": str(home)})
        save_accounts(signed_in, account)
        accounts_file = tmp_path / "secrets" / "accounts.json"
        accounts_file.parent.mkdir()
        shutil.copyfile(signed_in.accounts_file, accounts_file)
        accounts_file.chmod(0o444)
        prefix = "replicas-test:"
        for number in range(REPLICAS):
            own_home = tmp_path / f"replica-{number + 1}"
            env = script_env(
                own_home,
                emulator,
                PUTER_MCP_STATE=server.url,
                PUTER_MCP_STATE_PREFIX=prefix,
                PUTER_MCP_SLOT_LEASE=str(SLOT_LEASE),
                PUTER_MCP_MAX_WAIT=str(MAX_WAIT),
            )
            started.append(start_gateway_process(env, "--accounts-file", str(accounts_file)))
        return Fleet(list(started), server, prefix, emulator)

    try:
        yield make
    finally:
        for replica in started:
            replica.stop()
        server.stop()


def _assert_a_cooldown_is_shared(fleet: Fleet, model: str) -> None:
    """A model that fails on replica 1 is not asked again by replicas 2 and 3."""
    emulator = fleet.emulator
    emulator.state.add_fault(Fault.INTERNAL_ERROR, model=model, times=1)
    before = len(emulator.chat_requests())
    _ask(fleet.client(0), model)  # the 500 cools the model down (30-60 s); another may answer
    faulted = [r for r in emulator.chat_requests()[before:] if r.fault is Fault.INTERNAL_ERROR]
    assert len(faulted) == 1, emulator.chat_requests()[before:]
    asked_as = faulted[0].model
    for number in (1, 2, 4, 5):  # replicas 2 and 3, twice each
        _ask(fleet.client(number), model)
    again = [r for r in emulator.chat_requests()[before:] if r.model == asked_as]
    assert len(again) == 1, f"the model was asked again after its failure: {again}"


@pytest.mark.slow
def test_three_replicas_keep_one_free_account_within_its_in_flight_cap(
    emulator: Emulator, fleet_of: FleetFactory
) -> None:
    """Zero product 429s at three times an account's in-flight cap.

    The load: one free account (3 requests in flight at most, 30 per 10 s window), every
    answer held 0.3 s by the emulator, 9 clients at once, 3 on each replica, 24 requests in
    all. Each replica alone would let 3 run: without sharing, 9 would be in flight, three
    times the cap, and the emulator would refuse 6 of every 9 with "Too many concurrent
    requests." With the slots in Redis, the replicas together keep 3 in flight and the others
    wait their turn. 24 stays under the window of 30 so that only the in-flight cap binds.
    """
    fleet = fleet_of(emulator.free)
    limits = TIER_LIMITS[Tier.FREE]
    clients = limits.in_flight * REPLICAS
    emulator.state.add_fault(Fault.STALL_BEFORE_HEADERS, times=None, seconds=0.3)
    with ThreadPoolExecutor(max_workers=clients) as pool:
        statuses = list(pool.map(lambda number: _ask(fleet.client(number)), range(24)))
    assert statuses == [200] * 24
    assert _product_429s(emulator) == []
    assert len(emulator.chat_requests()) == 24


@pytest.mark.slow
def test_a_cooldown_learned_by_one_replica_is_honoured_by_the_other_two(
    emulator: Emulator, fleet_of: FleetFactory
) -> None:
    fleet = fleet_of(emulator.paid)
    _assert_a_cooldown_is_shared(fleet, MODEL)
    # Any replica's /metrics shows the whole fleet's requests (and says so), beside its own.
    sent = emulator.chat_requests()
    for replica in fleet.replicas:
        for _ in range(50):  # another replica's last settle lands a moment after its answer
            samples = _metric_samples(replica.url)
            fleet_wide = samples["puter_deployment_upstream_requests"]
            if sum(value for _labels, value in fleet_wide) >= len(sent):
                break
            time.sleep(0.02)
        (info,) = samples["puter_deployment_info"]
        assert "every replica sharing this Redis store" in info[0]["covers"]
        assert info[0]["window_seconds"] == "60"
        assert sum(value for _labels, value in fleet_wide) == len(sent)
        failed = [labels for labels, value in fleet_wide if labels["outcome"] != "ok" and value]
        assert failed, fleet_wide  # the 500 that cooled the model down, counted once
        own = sum(value for _labels, value in samples.get("puter_upstream_requests_total", []))
        assert own < len(sent)  # this replica's own counters: its share only


def _metric_samples(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A replica's /metrics, parsed: sample name -> [(labels, value)]."""
    text = httpx2.get(url + "/metrics", timeout=10).text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


@pytest.mark.slow
def test_redis_stopped_mid_load_fails_no_request_and_sharing_comes_back(
    emulator: Emulator, fleet_of: FleetFactory
) -> None:
    """Redis is killed while 6 clients send 48 requests over the replicas; none fails, and
    `/health` says degraded (200). Redis back, every replica returns to it and shares again.

    The paid account's limits (20 in flight, 200 per window) hold even while each replica
    paces alone in its memory: this test is about no failed request, not about pacing.
    """
    fleet = fleet_of(emulator.paid)
    emulator.state.add_fault(Fault.STALL_BEFORE_HEADERS, times=None, seconds=0.05)
    with ThreadPoolExecutor(max_workers=6) as pool:
        pending = [pool.submit(_ask, fleet.client(number)) for number in range(48)]
        for _ in range(400):  # until a third of the load has reached the emulator (20 s at most)
            if len(emulator.chat_requests()) >= 16:
                break
            time.sleep(0.05)
        fleet.redis.stop()
        statuses = [future.result(timeout=120) for future in pending]
    assert statuses == [200] * 48
    assert len(emulator.chat_requests()) == 48
    emulator.state.clear_faults()
    for number, replica in enumerate(fleet.replicas):
        # A replica finds Redis gone at its next operation; one more request makes sure.
        assert _ask(fleet.client(number)) == 200
        assert replica.logged(OFF_REDIS), "".join(replica.lines)
        health = httpx2.get(replica.url + "/health", timeout=10)
        assert health.status_code == 200, health.text  # still answering: keep sending to it
        assert health.json()["status"] == "degraded" and health.json()["degraded"] is True

    fleet.redis.start()  # empty, on the same port, as a Redis restarted without persistence
    for _ in range(60):  # each replica tries Redis again every 5 s at most (30 s bound)
        if all(replica.logged(BACK_ON_REDIS) for replica in fleet.replicas):
            break
        for number in range(REPLICAS):
            assert _ask(fleet.client(number)) == 200
        time.sleep(0.5)
    assert all(replica.logged(BACK_ON_REDIS) for replica in fleet.replicas), [
        "".join(replica.lines) for replica in fleet.replicas
    ]
    for replica in fleet.replicas:
        health = httpx2.get(replica.url + "/health", timeout=10).json()
        assert (health["status"], health["degraded"]) == ("ok", False)
    _assert_a_cooldown_is_shared(fleet, OTHER_MODEL)


@pytest.mark.slow
def test_a_killed_replicas_slots_come_back_when_their_lease_ends(
    emulator: Emulator, fleet_of: FleetFactory
) -> None:
    """Replica 1 holds all 3 in-flight places of a free account and is killed (SIGKILL: it
    gives nothing back). Its places still count in Redis, so the others cannot take them
    early; when the lease (`PUTER_MCP_SLOT_LEASE`, 8 s here) ends, replica 2 gets one."""
    fleet = fleet_of(emulator.free)
    cap = TIER_LIMITS[Tier.FREE].in_flight
    emulator.state.add_fault(Fault.STALL_BEFORE_HEADERS, times=cap, seconds=60)
    victim = fleet.replicas[0]
    held = ThreadPoolExecutor(max_workers=cap)
    try:
        for _ in range(cap):
            held.submit(_ask, openai.OpenAI(base_url=victim.url + "/v1", api_key="unused", max_retries=0))
        for _ in range(400):  # until the three requests have reached the emulator (20 s at most)
            if emulator.state.in_flight(emulator.free.username) == cap:
                break
            time.sleep(0.05)
        assert emulator.state.in_flight(emulator.free.username) == cap
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(timeout=10)
        # Redis still counts the places taken (nothing gave them back), though the emulator
        # has seen the connections close.
        assert fleet.running_slots() == cap
        assert emulator.all_released(emulator.free)
        assert _ask(fleet.client(1)) == 200
        assert _ask(fleet.client(2)) == 200
    finally:
        held.shutdown(wait=True, cancel_futures=True)
    assert fleet.running_slots() == 0
    assert _product_429s(emulator) == []


def test_the_slot_lease_is_a_setting(tmp_path: Path) -> None:
    paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path)})
    settings, _ = load_settings(paths=paths, env={})
    assert settings.routing.slot_lease == 900.0  # 15 minutes: longer than any request
    settings, _ = load_settings(paths=paths, env={"PUTER_MCP_SLOT_LEASE": "8"})
    assert settings.routing.slot_lease == 8.0
    (tmp_path / "config.toml").write_text("[routing]\nslot_lease = 60\n")
    settings, _ = load_settings(paths=paths, env={})
    assert settings.routing.slot_lease == 60.0
    with pytest.raises(ConfigError, match="slot_lease"):
        load_settings(paths=paths, env={"PUTER_MCP_SLOT_LEASE": "0"})


@pytest.mark.anyio
async def test_the_engine_leases_slots_for_the_configured_time(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)
    leased = settings.model_copy(update={"routing": settings.routing.model_copy(update={"slot_lease": 8.0})})
    engine = build_engine(leased, paths, store=MemoryStateStore())
    try:
        assert engine.pacer.lease_ttl == 8.0
    finally:
        await engine.aclose()
