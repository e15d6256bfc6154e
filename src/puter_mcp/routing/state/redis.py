"""The Redis store: the state that gateway replicas on one or several hosts share.

Same protocol, same rules as the SQLite store (docs/state.md, "Redis"). What SQLite does in one
write transaction is one Lua script here, run with EVALSHA (``register_script``), so that two
replicas never both take an account's last place:

- `_ACQUIRE`: check that the cooldowns the caller judged are still the stored ones, take a
  pacing slot only if the account's window and in-flight count allow it, and claim a probe
  with it;
- `_SETTLE`: give a slot back with its outcome, write the cooldown changes (after the same
  check) and append the attempt records to the capped stream.

Cooldown changes are Python functions of the current record (`CooldownChange`), so they cannot
run inside Redis. Instead every write to the cooldowns bumps a version number, and a script
writes only if the version is still the one the caller's copy was read at; if not, it answers
with the current records and the caller computes its changes again (optimistic concurrency, as
the protocol allows). The copy is kept between calls, so a step costs one round trip while no
other replica changes a cooldown, and two when one did.

Every key of one deployment and one Puter origin shares one hash tag (``{origin}``), so each
script's keys live on one Redis Cluster node. A slot is a lease: a sorted-set member scored by
its lease's end, so a replica that dies mid-request gives its places back when the lease ends,
and every slot key has a TTL long enough for what it holds.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, cast

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from puter_mcp.puter.errors import FailureKind
from puter_mcp.redis_client import redis_client, sync_redis_client
from puter_mcp.routing.redis_url import masked_url
from puter_mcp.routing.state.protocol import CooldownChanges, PendingSettle, shares_slots
from puter_mcp.routing.state.records import (
    DEFAULT_ORIGIN,
    SLOT_HISTORY,
    Admitted,
    Attempt,
    Cooldown,
    CooldownChange,
    CooldownKey,
    D,
    Judge,
    Scope,
    Slot,
    SlotRefusal,
    SlotRequest,
    StateStoreError,
    WindowUsage,
    applies_to,
    check_key,
    probe_claimable,
    refusal,
    with_claim,
)
from puter_mcp.routing.state.sqlite import Housekeeping

__all__ = [
    "ATTEMPTS_STREAM_LENGTH",
    "DEFAULT_PREFIX",
    "REDIS_STORE_ERRORS",
    "RedisCheck",
    "RedisStateStore",
    "check_redis",
]

DEFAULT_PREFIX = "puter-mcp:"
"""What every key starts with unless `[state] prefix` says otherwise."""

ATTEMPTS_STREAM_LENGTH = 100_000
"""About how many attempt records the stream keeps (``XADD ... MAXLEN ~``): days of a busy team."""

SOCKET_TIMEOUT = 0.5
"""Seconds to wait for Redis to connect or answer. Every script takes microseconds, so a longer
wait means Redis is gone, and the replica is better off in memory (`FallbackStateStore`)."""

REDIS_STORE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, StateStoreError)
"""What a failing Redis store raises (and `FallbackStateStore` turns into memory)."""

_MAX_TRIES = 50
"""Rounds of "the cooldowns changed, compute again" before giving up; each round means another
replica wrote a cooldown in the microseconds between two of ours, so this is never reached."""

_ORDER_SLACK = 60.0
"""Seconds by which the stream's order (when a record was written) may differ from its
records' times (when an attempt ended): `attempts_since` reads this much further back."""

# Lua numbers are doubles; Redis formats scores with 17 digits, and so do the scripts, so every
# time crosses between Python and Redis exactly (`repr` on the Python side).
_LUA_COMMON = """
local function fmt(x) return string.format('%.17g', x) end
local function bump(key)
  if redis.call('EXISTS', key) == 0 then
    -- A new version starts at the server's time in microseconds, so a Redis that lost its
    -- data never hands out a version a replica has already seen with other records.
    local t = redis.call('TIME')
    redis.call('SET', key, t[1] .. string.format('%06d', tonumber(t[2])))
  end
  redis.call('INCR', key)
  return redis.call('GET', key)
end
local function forget_old(started, running, settling, now, history)
  local old = redis.call('ZRANGEBYSCORE', started, '-inf', '(' .. fmt(now - history))
  for _, id in ipairs(old) do
    local lease = redis.call('ZSCORE', running, id)
    if not lease or tonumber(lease) <= now then
      redis.call('ZREM', started, id)
      redis.call('ZREM', running, id)
      redis.call('ZREM', settling, id)
    end
  end
  redis.call('ZREMRANGEBYSCORE', running, '-inf', fmt(now))
  redis.call('ZREMRANGEBYSCORE', settling, '-inf', fmt(now))
end
local function count_in_window(started, now, window)
  -- As `in_window`, without reading the whole window: only the two seconds around its edge,
  -- where the two ways of comparing could differ by a rounding, are read and compared exactly.
  local edge = now - window
  local count = redis.call('ZCOUNT', started, '(' .. fmt(edge + 1), '+inf')
  local near = redis.call('ZRANGEBYSCORE', started, '(' .. fmt(edge - 1), fmt(edge + 1), 'WITHSCORES')
  for i = 2, #near, 2 do
    if tonumber(near[i]) + window > now then count = count + 1 end
  end
  return count
end
local function in_window(started, now, window)
  -- `started + window > now`, not `started > now - window`: the time announced as "frees at"
  -- (started + window) is exactly when a request leaves. The range read is a second wider.
  local starts = {}
  local scored = redis.call('ZRANGEBYSCORE', started, '(' .. fmt(now - window - 1), '+inf', 'WITHSCORES')
  for i = 2, #scored, 2 do
    if tonumber(scored[i]) + window > now then starts[#starts + 1] = scored[i] end
  end
  return starts
end
"""

_ACQUIRE = (
    _LUA_COMMON
    + """
-- KEYS: cooldowns, version, started, running, settling, slot, last-used
-- ARGV: version read, take ('1'/'0'), slot id, account, now, window, max requests,
--       max in flight, lease until, history, claim field ('' for none), claimed record
local version = redis.call('GET', KEYS[2]) or '0'
if version ~= ARGV[1] then
  return {'stale', version, redis.call('HGETALL', KEYS[1])}
end
local answer = 'ok'
if ARGV[2] == '1' then
  local now, window, history = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[10])
  forget_old(KEYS[3], KEYS[4], KEYS[5], now, history)
  local requests = count_in_window(KEYS[3], now, window)
  local in_flight = redis.call('ZCARD', KEYS[4]) + redis.call('ZCARD', KEYS[5])
  if requests >= tonumber(ARGV[7]) or in_flight >= tonumber(ARGV[8]) then
    local first = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
    return {'refused', in_flight, first[2] or '', in_window(KEYS[3], now, window)}
  end
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
  redis.call('ZADD', KEYS[4], ARGV[9], ARGV[3])
  -- Every key outlives what it holds: the lease, then the history the window looks back on.
  local ttl = math.max(1000, math.ceil((tonumber(ARGV[9]) - now + history) * 1000))
  redis.call('SET', KEYS[6], ARGV[4], 'PX', ttl)
  for k = 3, 4 do
    if redis.call('PTTL', KEYS[k]) < ttl then redis.call('PEXPIRE', KEYS[k], ttl) end
  end
  local last = redis.call('HGET', KEYS[7], ARGV[4])
  if not last or tonumber(last) < now then redis.call('HSET', KEYS[7], ARGV[4], ARGV[5]) end
  answer = 'granted'
end
if ARGV[11] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[11], ARGV[12])
  version = bump(KEYS[2])
end
return {answer, version}
"""
)

_ATTEMPT_FIELDS = (
    "time",
    "account",
    "model",
    "kind",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "request_id",
)

_SETTLE = (
    _LUA_COMMON
    + """
-- KEYS: cooldowns, version, started, running, settling, slot, attempts
-- ARGV: version read ('' when nothing is written), slot id ('' for none), now, counted,
--       stream length, number of writes, then (field, record or '' to delete) per write,
--       then ten values per attempt record
if ARGV[1] ~= '' then
  local version = redis.call('GET', KEYS[2]) or '0'
  if version ~= ARGV[1] then
    return {'stale', version, redis.call('HGETALL', KEYS[1])}
  end
end
local id = ARGV[2]
if id ~= '' then
  if ARGV[4] == '1' then
    -- A counted request keeps its place until `now` (a moment ahead: see `Pacer.release`),
    -- never past its lease; a second release changes nothing.
    local lease = redis.call('ZSCORE', KEYS[4], id)
    if lease then
      redis.call('ZREM', KEYS[4], id)
      redis.call('ZADD', KEYS[5], fmt(math.min(tonumber(ARGV[3]), tonumber(lease))), id)
      local ttl = redis.call('PTTL', KEYS[3])
      if ttl > 0 then redis.call('PEXPIRE', KEYS[5], ttl) end
    end
  else
    -- Refused with 429: Puter does not count it, so neither does the window.
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZREM', KEYS[4], id)
    redis.call('ZREM', KEYS[5], id)
    redis.call('DEL', KEYS[6])
  end
end
local writes = tonumber(ARGV[6])
local version = ''
if writes > 0 then
  for i = 0, writes - 1 do
    local field, record = ARGV[7 + 2 * i], ARGV[8 + 2 * i]
    if record == '' then
      redis.call('HDEL', KEYS[1], field)
    else
      redis.call('HSET', KEYS[1], field, record)
    end
  end
  version = bump(KEYS[2])
end
local names = {'time', 'account', 'model', 'kind', 'latency_ms', 'ttft_ms', 'input_tokens',
               'output_tokens', 'cost_usd', 'request_id'}
local at = 7 + 2 * writes
while at + 9 <= #ARGV do
  local entry = {}
  for j = 1, 10 do
    entry[#entry + 1] = names[j]
    entry[#entry + 1] = ARGV[at + j - 1]
  end
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[5], '*', unpack(entry))
  at = at + 10
end
return {'ok', version}
"""
)

_READ_COOLDOWNS = """
-- KEYS: cooldowns, version; ARGV: the version the caller holds
local version = redis.call('GET', KEYS[2]) or '0'
if version == ARGV[1] then return {version} end
return {version, redis.call('HGETALL', KEYS[1])}
"""

_WINDOW_USAGE = (
    _LUA_COMMON
    + """
-- KEYS: started, running; ARGV: now, window
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
return {count_in_window(KEYS[1], now, window), redis.call('ZCOUNT', KEYS[2], '(' .. fmt(now), '+inf')}
"""
)

_FORGET_OLD_SLOTS = (
    _LUA_COMMON
    + """
-- KEYS: started, running, settling; ARGV: now, history
forget_old(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
"""
)

_TOUCH = """
-- KEYS: last-used; ARGV: account, now (a later time wins)
local last = redis.call('HGET', KEYS[1], ARGV[1])
if not last or tonumber(last) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""


# -- records as Redis holds them ----------------------------------------------------------


def _field(key: CooldownKey) -> str:
    """A cooldown's field in the cooldowns hash: its key, as JSON (names may hold any character)."""
    return json.dumps([key.scope.value, key.account, key.model, key.kind.value])


def _encode_cooldown(c: Cooldown) -> str:
    # JSON writes infinity as `Infinity` and `repr`-exact floats; only Python reads it back.
    return json.dumps(
        [
            c.scope.value,
            c.account,
            c.model,
            c.kind.value,
            c.until,
            c.probe_at,
            c.level,
            c.reason,
            c.since,
            c.probe_claimed_until,
        ]
    )


def _decode_cooldown(text: str) -> Cooldown:
    scope, account, model, kind, until, probe_at, level, reason, since, claimed = json.loads(text)
    return Cooldown(
        scope=Scope(scope),
        account=account,
        model=model,
        kind=FailureKind(kind),
        until=float(until),
        probe_at=None if probe_at is None else float(probe_at),
        level=int(level),
        reason=str(reason),
        since=float(since),
        probe_claimed_until=None if claimed is None else float(claimed),
    )


def _cooldowns_from(flat: Sequence[str]) -> dict[CooldownKey, Cooldown]:
    """The records of an HGETALL answer (field, value, field, value...)."""
    records = (_decode_cooldown(flat[i + 1]) for i in range(0, len(flat), 2))
    return {c.key: c for c in records}


def _number(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _attempt_values(a: Attempt) -> list[str]:
    """The ten values of one stream entry, in `_ATTEMPT_FIELDS` order ('' for None)."""
    return [
        repr(a.time),
        a.account,
        a.model,
        "" if a.kind is None else a.kind.value,
        repr(a.latency_ms),
        _number(a.ttft_ms),
        _number(a.input_tokens),
        _number(a.output_tokens),
        _number(a.cost_usd),
        a.request_id,
    ]


def _attempt_from_fields(fields: dict[str, str]) -> Attempt:
    def number(name: str) -> float | None:
        value = fields.get(name, "")
        return float(value) if value else None

    def count(name: str) -> int | None:
        value = fields.get(name, "")
        return int(value) if value else None

    kind = fields.get("kind", "")
    return Attempt(
        time=float(fields["time"]),
        account=fields["account"],
        model=fields["model"],
        kind=FailureKind(kind) if kind else None,
        latency_ms=float(fields["latency_ms"]),
        ttft_ms=number("ttft_ms"),
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cost_usd=number("cost_usd"),
        request_id=fields.get("request_id", ""),
    )


_Entries = list[tuple[str, dict[str, str]]]
"""Stream entries as the client answers with ``decode_responses``: (id, fields)."""


async def _run(script: AsyncScript, *, keys: list[str], args: list[Any]) -> list[Any]:
    """Run a registered script (EVALSHA; loaded again if Redis lost it) and type its answer."""
    return cast(list[Any], await script(keys=keys, args=args))


def _glob_escape(text: str) -> str:
    """`text` as a literal in a SCAN MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class _Stale(Exception):
    """A script found that the cooldowns changed since they were read (internal)."""


# -- the store ----------------------------------------------------------------------------


class RedisStateStore:
    """The shared store of gateway replicas: one Redis, every key under `prefix`.

    Keys (``P`` is ``<prefix>{<origin>}:``, the braces being the hash tag):

    - ``P cooldowns`` (hash: key as JSON -> record as JSON) and ``P cooldowns:version``;
    - ``P last-used`` (hash: account -> epoch seconds);
    - ``P slots:<account>:started`` (sorted set: slot id -> start), ``...:running`` (slot id ->
      lease end, while the request runs) and ``...:settling`` (slot id -> when a finished
      request lets go of its place); ``P slot:<id>`` (the slot's account, for a release by
      another connection);
    - ``P attempts`` (stream, capped at about `attempts_kept` records).

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://...``.
        origin: the Puter API origin whose records to see.
        prefix: what every key starts with, so that two deployments can share one Redis.
        password: used when the URL has none (``PUTER_MCP_REDIS_PASSWORD``).
        attempts_kept: about how many attempt records the stream keeps.
        socket_timeout: seconds to wait for Redis to connect or answer.
        housekeeping: old records to forget, once, before the first cooldowns are read.

    Nothing connects in the constructor; methods raise `redis.exceptions.RedisError` (or
    `OSError`) when Redis cannot be reached, which `FallbackStateStore` turns into memory.
    """

    def __init__(
        self,
        url: str,
        *,
        origin: str = DEFAULT_ORIGIN,
        prefix: str = DEFAULT_PREFIX,
        password: str | None = None,
        attempts_kept: int = ATTEMPTS_STREAM_LENGTH,
        socket_timeout: float = SOCKET_TIMEOUT,
        housekeeping: Housekeeping | None = None,
    ) -> None:
        self.url = url
        self.origin = origin
        self.prefix = prefix
        self.attempts_kept = attempts_kept
        # A Redis that is gone fails fast, into the fallback.
        self._redis = redis_client(url, password=password, socket_timeout=socket_timeout)
        self._client_options = (password, socket_timeout)  # for `release_owned`'s own client
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._settle = self._redis.register_script(_SETTLE)
        self._read_cooldowns = self._redis.register_script(_READ_COOLDOWNS)
        self._window_usage = self._redis.register_script(_WINDOW_USAGE)
        self._forget_old = self._redis.register_script(_FORGET_OLD_SLOTS)
        self._touch = self._redis.register_script(_TOUCH)
        self._base = f"{prefix}{{{origin}}}:"
        # The cooldowns as last read or written, and the version they are exact at ('': none
        # read yet, which no stored version equals).
        self._cooldowns: dict[CooldownKey, Cooldown] = {}
        self._version = ""
        self._queued: list[Attempt] = []  # see `log_attempt`
        self._held: dict[str, str] = {}  # slot id -> account, for the slots this store granted
        self._settling: set[asyncio.Task[None]] = set()  # see `settle`
        self._unsent: deque[PendingSettle] = deque()  # settles whose writing failed, for the next operation
        self._housekeeping = housekeeping
        shares_slots(self)

    # -- keys ------------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return self._base + name

    def _slot_keys(self, account: str) -> tuple[str, str, str]:
        base = self._key(f"slots:{account}:")
        return base + "started", base + "running", base + "settling"

    def _settle_keys(self, account: str, slot_id: str) -> list[str]:
        """The keys `_SETTLE` names, in its order."""
        return [
            *self._cooldown_keys(),
            *self._slot_keys(account),
            self._key(f"slot:{slot_id}"),
            self._key("attempts"),
        ]

    def describe(self) -> str:
        return f"{masked_url(self.url)} (prefix {self.prefix})"

    # -- the cooldown copy -----------------------------------------------------------------

    def _take(self, answer: Sequence[Any]) -> None:
        """Adopt the version and records a script answered with (after 'stale')."""
        self._version = str(answer[1])
        self._cooldowns = _cooldowns_from(cast(Sequence[str], answer[2]))

    async def _fresh_cooldowns(self) -> dict[CooldownKey, Cooldown]:
        """The stored cooldowns, read again only if a replica changed them since."""
        if self._housekeeping is not None:
            hk, self._housekeeping = self._housekeeping, None
            await self.prune(
                now=hk.now, attempts_max_age=hk.attempts_max_age, cooldowns_max_age=hk.cooldowns_max_age
            )
        answer = await _run(self._read_cooldowns, keys=self._cooldown_keys(), args=[self._version])
        if len(answer) > 1:
            self._version = str(answer[0])
            self._cooldowns = _cooldowns_from(answer[1])
        return self._cooldowns

    def _cooldown_keys(self) -> list[str]:
        return [self._key("cooldowns"), self._key("cooldowns:version")]

    # -- the two steps of a call -----------------------------------------------------------

    async def acquire(self, account: str, model: str, *, judge: Judge[D], slot: SlotRequest) -> Admitted[D]:
        await self._settled()
        if not self._version:
            await self._fresh_cooldowns()
        started, running, settling = self._slot_keys(account)
        keys = [
            *self._cooldown_keys(),
            started,
            running,
            settling,
            self._key(f"slot:{slot.slot_id}"),
            self._key("last-used"),
        ]
        for _ in range(_MAX_TRIES):
            known = self._cooldowns
            decision = judge([c for c in known.values() if applies_to(c, account, model)])
            claim = decision.claim
            current = None if claim is None else known.get(claim)
            claimable = claim is not None and current is not None and probe_claimable(current, slot.now)
            # A blocked pair, or a probe someone else holds, takes nothing; the script still
            # checks that the decision was made from the stored records.
            take = decision.take_slot and (claim is None or claimable)
            claimed = with_claim(current, decision.claim_until) if claimable and current else None
            answer = await _run(
                self._acquire,
                keys=keys,
                args=[
                    self._version,
                    "1" if take else "0",
                    slot.slot_id,
                    account,
                    repr(slot.now),
                    repr(slot.window),
                    slot.max_requests,
                    slot.max_in_flight,
                    repr(slot.lease_until),
                    repr(SLOT_HISTORY),
                    "" if claimed is None else _field(claimed.key),
                    "" if claimed is None else _encode_cooldown(claimed),
                ],
            )
            status = answer[0]
            if status == "stale":
                self._take(answer)
                continue
            if status == "refused":
                in_flight, first_settling, starts = answer[1], answer[2], answer[3]
                return Admitted(
                    decision,
                    refusal(
                        [float(s) for s in starts],
                        int(in_flight),
                        slot.window,
                        slot.max_requests,
                        slot.max_in_flight,
                        float(first_settling) if first_settling else None,
                    ),
                    claimed=False,
                )
            if claimed is not None:
                self._cooldowns = {**known, claimed.key: claimed}
                self._version = str(answer[1])
            if claim is not None and not claimable:
                return Admitted(decision, None, claimed=False)
            granted: Slot | None = None
            if status == "granted":
                self._held[slot.slot_id] = account
                granted = Slot(slot.slot_id, account, slot.now, slot.lease_until)
            return Admitted(decision, granted, claimed=claimed is not None)
        raise StateStoreError(_CHURN)

    async def settle(self, slot_id: str, *, now: float, counted: bool, changes: CooldownChanges = ()) -> None:
        # The answer is ready; a round trip to Redis for its bookkeeping need not hold it up.
        # The script is sent at once, in a task of its own; every later operation of this
        # store waits for it first (`_settled`), so none sees the state from before it.
        task = asyncio.get_running_loop().create_task(self._send_settle((slot_id, now, counted, changes)))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _send_settle(self, settle: PendingSettle) -> None:
        slot_id, now, counted, changes = settle
        try:
            await self._write(changes, slot=(slot_id, now, counted))
        except Exception:
            # Kept for the next operation, which writes it again and meets (and reports) the
            # error itself: through `FallbackStateStore`, that is memory until Redis is back.
            self._unsent.append(settle)

    async def _settled(self) -> None:
        """Wait for the settles handed over so far; write again those whose writing failed.

        Raises:
            RedisError, OSError, StateStoreError: a settle still cannot be written.
        """
        if self._settling:
            await asyncio.wait(list(self._settling))
        while self._unsent:
            slot_id, now, counted, changes = self._unsent[0]
            await self._write(changes, slot=(slot_id, now, counted))
            self._unsent.popleft()

    def log_attempt(self, attempt: Attempt) -> None:
        self._queued.append(attempt)

    async def _write(
        self, changes: CooldownChanges, *, slot: tuple[str, float, bool] | None = None
    ) -> list[Cooldown | None]:
        """One `_SETTLE` script: the slot's release, the changes, the queued attempts."""
        slot_id, now, counted = slot if slot is not None else ("", 0.0, True)
        account = await self._account_of(slot_id) if slot_id else None
        keys = self._settle_keys(account or "", slot_id)
        if changes and not self._version:
            await self._fresh_cooldowns()
        queued, self._queued = self._queued, []
        try:
            for _ in range(_MAX_TRIES):
                known = self._cooldowns
                working = dict(known)
                results: list[Cooldown | None] = []
                writes: dict[CooldownKey, Cooldown | None] = {}
                for key, change in changes:
                    current = working.get(key)
                    new = change(current)
                    check_key(new, key)
                    if new != current:  # most successes change nothing: nothing to write
                        writes[key] = new
                        if new is None:
                            working.pop(key, None)
                        else:
                            working[key] = new
                    results.append(new)
                args: list[Any] = [
                    self._version if changes else "",
                    slot_id if account is not None else "",
                    repr(now),
                    "1" if counted else "0",
                    self.attempts_kept,
                    len(writes),
                ]
                for key, new in writes.items():
                    args += [_field(key), "" if new is None else _encode_cooldown(new)]
                for attempt in queued:
                    args += _attempt_values(attempt)
                answer = await _run(self._settle, keys=keys, args=args)
                if answer[0] == "stale":
                    self._take(answer)
                    continue
                if writes:
                    self._cooldowns = working
                    self._version = str(answer[1])
                if slot_id:
                    self._held.pop(slot_id, None)
                return results
            raise StateStoreError(_CHURN)
        except BaseException:
            # The attempts wait for the next write (or for memory, if Redis is gone).
            self._queued[:0] = queued
            raise

    def release_owned(self, *, now: float) -> int:
        """Give back every slot this store granted and has not settled, as counted requests;
        how many there were.

        Synchronous, for a process that a signal is stopping (see
        `protocol.release_process_slots`): its event loop will not run again, so this opens a
        blocking connection of its own. A settle on its way meanwhile changes nothing (a slot
        is released once).
        """
        held = dict(self._held)
        if not held:
            return 0
        password, socket_timeout = self._client_options
        with sync_redis_client(self.url, password=password, socket_timeout=socket_timeout) as client:
            for slot_id, account in held.items():
                keys = self._settle_keys(account, slot_id)
                # No cooldown read or written, no attempt: only the slot (see `_SETTLE`).
                args = ["", slot_id, repr(now), "1", self.attempts_kept, 0]
                client.eval(_SETTLE, len(keys), *keys, *args)
        return len(held)

    async def _account_of(self, slot_id: str) -> str | None:
        """The account a slot was taken on: known here, or read from its key (a slot taken by
        another connection); None for a slot nobody knows (released long ago, or never)."""
        account = self._held.get(slot_id)
        if account is None:
            account = cast(str | None, await self._redis.get(self._key(f"slot:{slot_id}")))
        return account

    # -- cooldowns -------------------------------------------------------------------------

    async def cooldowns_for(self, account: str, model: str) -> list[Cooldown]:
        await self._settled()
        known = await self._fresh_cooldowns()
        return [c for c in known.values() if applies_to(c, account, model)]

    async def list_cooldowns(self) -> list[Cooldown]:
        await self._settled()
        return list((await self._fresh_cooldowns()).values())

    async def update_cooldown(self, key: CooldownKey, change: CooldownChange) -> Cooldown | None:
        return (await self.update_cooldowns([(key, change)]))[0]

    async def update_cooldowns(self, changes: CooldownChanges) -> list[Cooldown | None]:
        await self._settled()
        return await self._write(changes)

    async def delete_cooldown(self, key: CooldownKey) -> bool:
        await self._settled()
        existed: list[bool] = []

        def remove(current: Cooldown | None) -> None:
            existed[:] = [current is not None]
            return None

        await self._write([(key, remove)])
        return existed[0]

    async def claim_probe(self, key: CooldownKey, *, now: float, lease_until: float) -> bool:
        await self._settled()
        won: list[bool] = []

        def claim(current: Cooldown | None) -> Cooldown | None:
            winning = current is not None and probe_claimable(current, now)
            won[:] = [winning]
            return with_claim(current, lease_until) if winning and current is not None else current

        await self._write([(key, claim)])
        return won[0]

    async def release_probe(self, key: CooldownKey) -> None:
        await self._settled()
        await self._write([(key, lambda current: None if current is None else with_claim(current, None))])

    # -- pacing ----------------------------------------------------------------------------

    async def acquire_slot(
        self,
        account: str,
        *,
        slot_id: str,
        now: float,
        window: float,
        max_requests: int,
        max_in_flight: int,
        lease_until: float,
    ) -> Slot | SlotRefusal:
        request = SlotRequest(slot_id, now, window, max_requests, max_in_flight, lease_until)
        admitted = await self.acquire(account, "", judge=_take_a_slot, slot=request)
        assert admitted.slot is not None  # the judge always takes one
        return admitted.slot

    async def release_slot(self, slot_id: str, *, now: float, counted: bool) -> None:
        await self._settled()
        await self._write((), slot=(slot_id, now, counted))

    async def window_usage(self, account: str, *, now: float, window: float) -> WindowUsage:
        await self._settled()
        started, running, _settling = self._slot_keys(account)
        requests, in_flight = await _run(
            self._window_usage, keys=[started, running], args=[repr(now), repr(window)]
        )
        # Running requests only: a finished one still settling is not in flight to a reader.
        return WindowUsage(requests=int(requests), in_flight=int(in_flight))

    # -- last use and attempts -------------------------------------------------------------

    async def touch(self, account: str, now: float) -> None:
        await self._settled()
        await _run(self._touch, keys=[self._key("last-used")], args=[account, repr(now)])

    async def last_used(self) -> dict[str, float]:
        await self._settled()
        stored = cast(dict[str, str], await self._redis.hgetall(self._key("last-used")))
        return {str(account): float(at) for account, at in stored.items()}

    async def record_attempt(self, attempt: Attempt) -> None:
        await self._settled()
        self.log_attempt(attempt)
        await self._write(())

    async def recent_attempts(self, limit: int = 100) -> list[Attempt]:
        await self._settled()
        if self._queued:
            await self._write(())
        if limit <= 0:
            return []
        entries = cast(_Entries, await self._redis.xrevrange(self._key("attempts"), count=limit))
        return [_attempt_from_fields(fields) for _id, fields in entries]

    async def attempts_since(self, since: float) -> list[Attempt]:
        """Every attempt that ended at `since` or later, oldest first (usage statistics)."""
        await self._settled()
        if self._queued:
            await self._write(())
        found: list[Attempt] = []
        newest = "+"
        # Newest first, in pages, until a page reaches records older than `since` by more than
        # the stream's order can differ from the records' times.
        for _ in range(max(1, self.attempts_kept // 1000 + 2)):
            page = cast(_Entries, await self._redis.xrevrange(self._key("attempts"), max=newest, count=1000))
            for _id, fields in page:
                found.append(_attempt_from_fields(fields))
            if len(page) < 1000 or found[-1].time < since - _ORDER_SLACK:
                break
            newest = "(" + page[-1][0]
        return sorted((a for a in found if a.time >= since), key=lambda a: a.time)

    # -- housekeeping ----------------------------------------------------------------------

    async def prune(self, *, now: float, attempts_max_age: float, cooldowns_max_age: float) -> None:
        await self._settled()
        await self._prune_attempts(now - attempts_max_age)
        old = [c.key for c in (await self._fresh_cooldowns()).values() if c.until < now - cooldowns_max_age]
        if old:
            cutoff = now - cooldowns_max_age
            await self._write(
                [(key, lambda c, cut=cutoff: None if c is None or c.until < cut else c) for key in old]
            )
        pattern = _glob_escape(self._key("slots:")) + "*:started"
        async for started in self._redis.scan_iter(match=pattern, count=500):
            base = started[: -len("started")]
            await _run(
                self._forget_old,
                keys=[started, base + "running", base + "settling"],
                args=[repr(now), repr(SLOT_HISTORY)],
            )

    async def _prune_attempts(self, cutoff: float) -> None:
        """Delete the records older than `cutoff` from the oldest end of the stream."""
        stream = self._key("attempts")
        oldest = "-"
        for _ in range(max(1, self.attempts_kept // 1000 + 2)):
            page = cast(_Entries, await self._redis.xrange(stream, min=oldest, count=1000))
            old = [entry_id for entry_id, fields in page if float(fields["time"]) < cutoff]
            if old:
                await self._redis.xdel(stream, *old)
            if len(page) < 1000 or len(old) < len(page):
                return
            oldest = "(" + page[-1][0]

    async def recover(self, error: BaseException) -> bool:
        """Nothing to repair here: the client reconnects by itself, and `FallbackStateStore`
        tries Redis again while it answers from memory."""
        return False

    async def aclose(self) -> None:
        """Write the settles and attempts still queued (if Redis answers), then close the
        connections."""
        try:
            await self._settled()
            if self._queued:
                await self._write(())
        finally:
            await self._redis.aclose()

    # -- doctor ----------------------------------------------------------------------------

    async def server_info(self) -> tuple[str, float]:
        """The Redis version, and the milliseconds of one round trip (a PING), for doctor."""
        info = await self._redis.info("server")
        started = time.perf_counter()
        await self._redis.ping()
        return str(info.get("redis_version", "?")), (time.perf_counter() - started) * 1000


_CHURN = (
    "the Redis state store's cooldowns changed on every one of 50 tries; another replica writes in a loop"
)


class _TakeASlot:
    """The decision of `acquire_slot`: a slot, no probe."""

    take_slot = True
    claim = None
    claim_until = math.inf


def _take_a_slot(_cooldowns: list[Cooldown]) -> _TakeASlot:
    return _TakeASlot()


@dataclass(frozen=True, slots=True)
class RedisCheck:
    """What `check_redis` found: reachable (and recent enough) or not, and what to tell the user."""

    ok: bool
    detail: str


async def check_redis(url: str, *, password: str | None = None, prefix: str = DEFAULT_PREFIX) -> RedisCheck:
    """Reach the Redis that `url` names, the way the store does (for `puter-mcp doctor`)."""
    store = RedisStateStore(url, password=password, prefix=prefix, socket_timeout=2.0)
    shown = masked_url(url)
    try:
        version, latency = await store.server_info()
    except REDIS_STORE_ERRORS as error:
        return RedisCheck(False, f"{shown} cannot be reached ({error})")
    finally:
        with suppress(*REDIS_STORE_ERRORS):
            await store.aclose()
    major = version.split(".", 1)[0]
    if major.isdigit() and int(major) < 5:
        return RedisCheck(False, f"{shown} runs Redis {version}; the store needs Redis 5 or later (streams)")
    return RedisCheck(
        True, f"{shown} answers: Redis {version}, one round trip {latency:.2f} ms, keys under {prefix!r}"
    )
