"""The machine we install on: platform, home, environment and working directory.

Every client keeps its config somewhere that depends on the OS, the home directory and a few
environment variables (APPDATA, XDG_CONFIG_HOME). Gathering them in one value lets tests point
the whole installer at a temporary directory and pretend to be macOS or Windows, instead of
patching `sys.platform` and `Path.home()` globally.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Platform = Literal["linux", "darwin", "win32"]


def normalise_platform(name: str) -> Platform:
    """Map `sys.platform`-like names (and "macos"/"windows") to the three we distinguish."""
    lowered = name.lower()
    if lowered.startswith("win"):
        return "win32"
    if lowered in {"darwin", "macos", "mac", "osx"}:
        return "darwin"
    return "linux"


@dataclass(frozen=True)
class Host:
    """Where config files live on this machine (or on the machine a test pretends to be)."""

    platform: Platform
    home: Path
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def current(cls) -> Host:
        return cls(
            platform=normalise_platform(sys.platform),
            home=Path.home(),
            cwd=Path.cwd(),
            env=dict(os.environ),
        )

    def appdata(self) -> Path:
        """Windows' roaming application data folder (%APPDATA%)."""
        value = self.env.get("APPDATA")
        return Path(value) if value else self.home / "AppData" / "Roaming"

    def xdg_config(self) -> Path:
        """Linux's per-user config folder ($XDG_CONFIG_HOME, else ~/.config)."""
        value = self.env.get("XDG_CONFIG_HOME")
        # The XDG spec says a relative value is invalid and must be ignored.
        return Path(value) if value and Path(value).is_absolute() else self.home / ".config"

    def app_config(self, linux_and_windows_name: str, mac_name: str | None = None) -> Path:
        """An Electron-style app's config folder: ~/Library/Application Support/<name> on macOS,
        %APPDATA%/<name> on Windows, $XDG_CONFIG_HOME/<name> on Linux."""
        if self.platform == "darwin":
            return self.home / "Library" / "Application Support" / (mac_name or linux_and_windows_name)
        if self.platform == "win32":
            return self.appdata() / linux_and_windows_name
        return self.xdg_config() / linux_and_windows_name
