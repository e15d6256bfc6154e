"""How long a call to Puter may wait, at each stage: the one home of the defaults.

`PuterClient` enforces these limits (its module docstring says what each one covers), and the
``[timeouts]`` settings take their defaults from `DEFAULT_TIMEOUTS`, so a client built without
settings (tests, the emulator, the sandbox) and one built from them never disagree. This
module imports nothing, so that the settings can read it without loading the HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TIMEOUTS", "Timeouts"]


@dataclass(frozen=True)
class Timeouts:
    """Limits of one call to Puter, in seconds.

    Attributes:
        connect: opening a connection.
        first_byte: from sending a request to the answer's headers.
        idle: the longest silence between two lines of a streamed answer (body reads too).
        total: one request from start to end; a long reasoning answer streams for minutes.
    """

    connect: float = 10.0
    first_byte: float = 60.0
    idle: float = 60.0
    total: float = 300.0


DEFAULT_TIMEOUTS = Timeouts()
