"""Which process holds a pacing slot, and whether that process still runs.

A slot names its owner: the host, the process id and the process's start time. A process
that dies without giving its slots back (SIGKILL, a crash, a power cut) would otherwise keep
an account's in-flight places for the whole lease (15 minutes); with the owner recorded, any
other process on the same host sees at once that the owner is gone and frees them. The start
time tells a dead process from a new one that happens to reuse its process id.

How "still runs" is decided:

- Linux: ``/proc/<pid>/stat`` exists, is not a zombie, and its start time (field 22, clock
  ticks since boot) is the recorded one;
- other POSIX systems: ``os.kill(pid, 0)`` finds the process (a reused id cannot be told
  apart there; the lease still bounds the damage);
- Windows: not checked (``os.kill`` would terminate the process), so only the lease frees a
  dead process's slots.

A slot recorded on another host is never checked: its process ids mean nothing here, so the
lease is the only way out for it (docs/state.md, "Slot ownership and leases").
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass

__all__ = ["Owner", "is_running", "this_process"]


@dataclass(frozen=True, slots=True)
class Owner:
    """A process, as recorded with each slot it takes.

    Attributes:
        host: which machine (and, on Linux, which process-id namespace) the pid belongs to.
        pid: the process id.
        started: the process's start time as the system reports it (Linux), else None.
    """

    host: str
    pid: int
    started: str | None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None if there is none.

    The command name (field 2) is in parentheses and may itself contain spaces and
    parentheses, so the fields are split after its last closing parenthesis: index 0 is then
    field 3 (the state) and field ``n`` is at index ``n - 3``.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].decode("ascii", errors="replace").split()


_START_FIELD = 22 - 3
_STATE_FIELD = 3 - 3
_DEAD_STATES = ("Z", "X")  # a zombie has ended; only its exit status waits to be collected


def _start_time(pid: int) -> str | None:
    fields = _stat_fields(pid) if sys.platform.startswith("linux") else None
    if not fields or len(fields) <= _START_FIELD:
        return None
    return fields[_START_FIELD]


def _host_id() -> str:
    """This host, plus (on Linux) its process-id namespace: two containers on one machine
    reuse each other's pids, so each must count as a host of its own."""
    host = socket.gethostname()
    try:
        return f"{host}/pidns:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return host


_current: Owner | None = None


def this_process() -> Owner:
    """This process (worked out again after a fork: the child is another owner)."""
    global _current
    pid = os.getpid()
    if _current is None or _current.pid != pid:
        _current = Owner(_host_id(), pid, _start_time(pid))
    return _current


def is_running(owner: Owner) -> bool:
    """Whether the owner may still run. Always True for another host's process (it cannot be
    checked from here) and on Windows; False only when the process is known to be gone."""
    me = this_process()
    if owner.host != me.host:
        return True
    if owner.pid == me.pid and owner.started == me.started:
        return True
    if sys.platform.startswith("linux"):
        fields = _stat_fields(owner.pid)
        if not fields or fields[_STATE_FIELD] in _DEAD_STATES:
            return False
        return owner.started is None or (len(fields) > _START_FIELD and fields[_START_FIELD] == owner.started)
    if sys.platform == "win32":
        return True
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, as another user's process
    return True
