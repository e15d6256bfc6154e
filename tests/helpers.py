"""Helpers shared by test files (imported by them, never by conftest.py)."""

from __future__ import annotations

import signal
import subprocess


def stop_with(server: subprocess.Popen[bytes], how: signal.Signals) -> int | None:
    """Send `how` to a server process and wait for it to end (10 s at most; killed after
    that), returning its exit status: `-how` when the signal ended it."""
    try:
        server.send_signal(how)
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return server.returncode
