"""The accounts file: the Puter accounts puter-mcp may call as, with their tokens and settings.

Every MCP client starts its own puter-mcp process, and all of them share this one file. So:

- every change is a read-modify-write under an exclusive lock on a sibling lock file (a
  change made by another process between our read and our write would otherwise be lost);
- every write is atomic (temp file in the same directory, fsync, ``os.replace``, fsync of the
  directory), so a reader or a crash never sees half a file, and readers need no lock;
- the file is owner-only (0600, directory 0700), set explicitly rather than left to the umask;
- a file we cannot understand is never overwritten silently: it is copied aside once (per
  distinct content), reported, and a write refuses to replace it unless the caller says the
  user has been told where the copy is (``overwrite_corrupt=True``).

No network here: the caller checks a token with ``/whoami`` and passes what it learned.
Tokens are held in `pydantic.SecretStr`, so neither ``repr``, ``str`` nor ``model_dump`` of an
`Account` shows one; only this module's own serialiser writes them out, to the file.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from puter_mcp.accounts.identity import choose_tier
from puter_mcp.accounts.secrets import mask_token
from puter_mcp.files import (
    PRIVATE_FILE_MODE,
    PrivateDirError,
    chmod_private,
    ensure_private_dir,
    write_private_atomic,
)
from puter_mcp.puter.tiers import STATED_TIERS, StatedTier, Tier

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

__all__ = [
    "ACCOUNTS_ENV",
    "FILE_VERSION",
    "Account",
    "AccountNameError",
    "AccountNotFound",
    "AccountsError",
    "AccountsLocked",
    "AccountsSnapshot",
    "AccountsStore",
    "CorruptAccountsFile",
    "FixedAccountsStore",
    "ReadOnlyAccounts",
    "default_accounts_path",
    "fixed_accounts",
    "fixed_accounts_source",
    "validate_account_name",
]

logger = logging.getLogger(__name__)


FILE_VERSION = 1
"""The format version this code reads and writes."""

_NAME_MAX = 64
# Names are typed on command lines (`puter-mcp use NAME`): no spaces, and no leading `-` that
# argparse would take for an option.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*")
_NAME_RULE = (
    f"1 to {_NAME_MAX} characters: letters, digits and _ . @ + -, starting with a letter, a digit or _"
)

_DEFAULT_LOCK_TIMEOUT = 10.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(moment: datetime) -> datetime:
    """Timestamps are stored in UTC; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def default_accounts_path() -> Path:
    """Where the accounts file lives by default: ``accounts.json`` in the platformdirs data dir."""
    import platformdirs  # only the commands that need the default location pay for the import

    return Path(platformdirs.user_data_dir("puter-mcp", appauthor=False)) / "accounts.json"


def validate_account_name(name: str) -> str:
    """Return `name` stripped if it is a valid account name, else raise `ValueError`."""
    candidate = name.strip()
    if not (0 < len(candidate) <= _NAME_MAX and _NAME_PATTERN.fullmatch(candidate)):
        raise ValueError(f"{candidate!r} is not a valid account name (use {_NAME_RULE})")
    return candidate


def _name_from_username(username: str) -> str:
    """Derive a valid account name from a Puter username (which is normally one already)."""
    name = re.sub(r"[^A-Za-z0-9_.@+-]+", "-", username.strip()).lstrip(".@+-")[:_NAME_MAX]
    return name or "account"


# --------------------------------------------------------------------------------------------
# The model


class Account(BaseModel):
    """One Puter account puter-mcp may call as.

    Identity (`username`, `uuid`, `is_temp`, `tier`) and `token` come from sign-in and are
    replaced when the user signs in again; `name`, `tier_override` and `enabled` are the
    user's settings and survive that.
    """

    # hide_input_in_errors: a ValidationError would otherwise quote the input, token included.
    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    name: str = Field(
        default="",
        description="Unique (case-insensitively) local name; defaults to the Puter username.",
    )
    username: str = Field(description="The Puter username, as /whoami reported it.")
    uuid: str | None = Field(default=None, description="The Puter user uuid, when known.")
    token: SecretStr = Field(description="The bearer token; never shown, see `masked_token`.")
    is_temp: bool = Field(default=False, description="A temporary (guest) Puter account.")
    tier: StatedTier | None = Field(default=None, description="The plan as learned at sign-in.")
    tier_override: StatedTier | None = Field(
        default=None, description="The user's word on the plan; wins over `tier`."
    )
    added_at: datetime = Field(default_factory=_utcnow, description="When it was first stored.")
    updated_at: datetime = Field(default_factory=_utcnow, description="When the record last changed.")
    enabled: bool = Field(default=True, description="False: the user asked not to call as it.")

    @classmethod
    def create(
        cls,
        *,
        username: str,
        token: str | SecretStr,
        uuid: str | None = None,
        is_temp: bool = False,
        tier: Tier | str | None = None,
        name: str | None = None,
    ) -> Account:
        """Build an account from what a sign-in learned (accepts the token and the tier as plain
        strings; a tier other than paid, free or temp is refused)."""
        return cls.model_validate(
            {
                "name": name or "",
                "username": username,
                "uuid": uuid,
                "token": token,
                "is_temp": is_temp,
                "tier": tier,
            }
        )

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_username(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name"):
            username = data.get("username")
            if isinstance(username, str) and username.strip():
                return {**data, "name": _name_from_username(username)}
        return data

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return validate_account_name(value)

    @field_validator("username")
    @classmethod
    def _check_username(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the username is empty")
        return value

    @field_validator("token", mode="before")
    @classmethod
    def _check_token(cls, value: Any) -> Any:
        # Pasted tokens often carry a newline; a token is never empty.
        plain = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(plain, str):
            plain = plain.strip()
            if not plain:
                raise ValueError("the token is empty")
            return SecretStr(plain)
        return value

    @field_validator("added_at", "updated_at")
    @classmethod
    def _check_timestamp(cls, value: datetime) -> datetime:
        return _as_utc(value)

    @property
    def masked_token(self) -> str:
        """The token as it may be shown to a person (``eyJh…k9Qz``)."""
        return mask_token(self.token)

    @property
    def effective_tier(self) -> Tier | None:
        """The tier to pace by as far as this record says (`choose_tier` has the whole rule)."""
        return choose_tier(account=self).known


@dataclass(frozen=True, slots=True)
class AccountsSnapshot:
    """What the accounts file held when it was read.

    `problem` is a message for the user when the file could not be used (the accounts list is
    then empty); `backup_path` is where a corrupt file was copied, if it was.
    """

    accounts: list[Account] = field(default_factory=list)
    default: str | None = None
    problem: str | None = None
    backup_path: Path | None = None

    @property
    def names(self) -> list[str]:
        return [account.name for account in self.accounts]

    def get(self, name: str) -> Account | None:
        """The account called `name` (case-insensitively), or None."""
        found = _find(self.accounts, name)
        return None if found is None else found[1]

    def default_account(self) -> Account | None:
        return None if self.default is None else self.get(self.default)


# --------------------------------------------------------------------------------------------
# Errors


class AccountsError(Exception):
    """Something about the stored accounts went wrong; the message says what to do."""


class AccountNotFound(AccountsError, LookupError):
    """No stored account has that name."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = list(known)
        if self.known:
            message = f"No account named {name!r}. Known accounts: {', '.join(self.known)}."
        else:
            message = f"No account named {name!r}: no account is signed in. Sign in with `puter-mcp login`."
        super().__init__(message)


class AccountNameError(AccountsError, ValueError):
    """A new account name is invalid or already taken."""


class CorruptAccountsFile(AccountsError):
    """The accounts file cannot be understood, and a write would replace it."""

    def __init__(self, path: Path, backup_path: Path | None, reason: str) -> None:
        self.path = path
        self.backup_path = backup_path
        self.reason = reason
        super().__init__(
            f"{_corrupt_problem(path, backup_path, reason)} Nothing was written: "
            "signing in again replaces the damaged file (the copy is kept)."
        )


class AccountsLocked(AccountsError):
    """Another process held the accounts lock for longer than we were willing to wait."""

    def __init__(self, lock_path: Path, timeout: float) -> None:
        self.lock_path = lock_path
        self.timeout = timeout
        super().__init__(
            f"Could not lock the accounts file within {timeout:g} s: another puter-mcp process holds "
            f"{lock_path}. Try again; if no other puter-mcp is running, the lock is stuck on "
            "this file system and that file may be deleted."
        )


def _corrupt_problem(path: Path, backup_path: Path | None, reason: str) -> str:
    if backup_path is not None:
        kept = f"Its content was copied to {backup_path}."
        restore = f"or fix that copy and move it back to {path}"
    else:
        kept = "It could not be copied aside, so it was left untouched."
        restore = "or fix the file"
    return (
        f"The accounts file {path} cannot be used: {reason}. {kept} No account is available "
        f"until you sign in again (`puter-mcp login`) {restore}."
    )


# --------------------------------------------------------------------------------------------
# The file format


class _BadContent(Exception):
    """The file's bytes are not a valid accounts document; `reason` says why (no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _State:
    """The mutable working copy a change edits before it is written back."""

    accounts: list[Account]
    default: str | None


def _find(accounts: Sequence[Account], name: str) -> tuple[int, Account] | None:
    wanted = name.strip().casefold()
    for index, account in enumerate(accounts):
        if account.name.casefold() == wanted:
            return index, account
    return None


def _describe_validation_error(error: ValidationError) -> str:
    # include_input=False: the rejected input may be a whole record, token included.
    parts = []
    for detail in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in detail["loc"]) or "record"
        parts.append(f"{where}: {detail['msg']}")
    return "; ".join(parts)


def _parse(raw: bytes) -> _State:
    """Decode the file's bytes, or raise `_BadContent` saying (without secrets) what is wrong."""
    if not raw.strip():
        # An empty file holds nothing that could be lost: treat it as no accounts.
        return _State([], None)
    try:
        document = json.loads(raw.decode("utf-8-sig"))  # a byte-order mark is not damage
    except UnicodeDecodeError:
        raise _BadContent("it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _BadContent(
            f"it is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(document, dict):
        raise _BadContent("it is not a JSON object")
    version = document.get("version")
    if type(version) is not int or version != FILE_VERSION:
        if type(version) is int and version > FILE_VERSION:
            raise _BadContent(
                f"it is format version {version}, written by a newer puter-mcp; "
                f"this one reads version {FILE_VERSION}"
            )
        shown = version if type(version) is int else "missing or not a number"
        raise _BadContent(f"its format version is {shown}, expected {FILE_VERSION}")
    records = document.get("accounts")
    if not isinstance(records, list):
        raise _BadContent('"accounts" is not a list')
    default = document.get("default")
    if default is not None and not isinstance(default, str):
        raise _BadContent('"default" is neither null nor an account name')

    accounts: list[Account] = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise _BadContent(f"account #{number} is not a JSON object")
        try:
            account = Account.model_validate(record)
        except ValidationError as exc:
            raise _BadContent(f"account #{number} is invalid ({_describe_validation_error(exc)})") from None
        if _find(accounts, account.name) is not None:
            raise _BadContent(f"two accounts are named {account.name!r}")
        accounts.append(account)

    state = _State(accounts, default)
    _normalise_default(state)
    return state


def _normalise_default(state: _State) -> None:
    """Keep `default` naming a stored account: the first one when it names none."""
    found = None if state.default is None else _find(state.accounts, state.default)
    if found is not None:
        state.default = found[1].name
    else:
        state.default = state.accounts[0].name if state.accounts else None


def _record(account: Account) -> dict[str, Any]:
    record = account.model_dump(mode="json")
    record["token"] = account.token.get_secret_value()  # the one place a token is written out
    return record


def _serialise(state: _State) -> bytes:
    document = {
        "version": FILE_VERSION,
        "default": state.default,
        "accounts": [_record(account) for account in state.accounts],
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# --------------------------------------------------------------------------------------------
# File-system primitives: owner-only modes, atomic replacement, an inter-process lock


def _ensure_private_dir(directory: Path) -> None:
    """Create the directory owner-only if missing (the one helper every puter-mcp directory
    goes through); a file in the way becomes an `AccountsError` saying what to do."""
    try:
        ensure_private_dir(directory)
    except PrivateDirError as exc:
        raise AccountsError(f"{exc}; nothing was changed.") from None


if sys.platform == "win32":

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path`, waiting at most `timeout` seconds for it.

    The lock file is never deleted: removing it while another process waits on it would let
    two processes hold "the" lock at once. Each acquisition opens its own descriptor, so
    threads of one process exclude each other too.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        chmod_private(lock_path, PRIVATE_FILE_MODE)
        deadline = time.monotonic() + timeout
        pause = 0.002
        while not _try_lock(fd):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AccountsLocked(lock_path, timeout)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.05)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# The store

_R = TypeVar("_R")


class AccountsStore:
    """The accounts file at `path`, safe to share between processes.

    Reads (`load` and the lookups built on it) take no lock: writes are atomic. Changes take
    the lock, re-read the file, apply the change and write it back. `clock` stamps
    ``added_at``/``updated_at`` and names corrupt-file backups; it is injectable for tests.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        lock_timeout: float = _DEFAULT_LOCK_TIMEOUT,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"AccountsStore({str(self.path)!r})"

    # ---- reading

    def version(self) -> tuple[int, int, int] | None:
        """What changes when the file changes (mtime, size, inode), or None when it is absent:
        a reader parses the file again only when this differs."""
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def load(self) -> AccountsSnapshot:
        """Read the accounts; never raises for a missing, unreadable or corrupt file.

        A corrupt file is copied aside (once per distinct content) and described in
        `AccountsSnapshot.problem`, with an empty accounts list.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AccountsSnapshot()
        except OSError as exc:
            return AccountsSnapshot(
                problem=(
                    f"The accounts file {self.path} cannot be read ({exc.strerror or exc}). "
                    "Check that it is a file you own and can read; no account is available until then."
                )
            )
        self._tighten_permissions()
        try:
            state = _parse(raw)
        except _BadContent as bad:
            backup = self._keep_corrupt_copy_locked(raw)
            return AccountsSnapshot(
                problem=_corrupt_problem(self.path, backup, bad.reason), backup_path=backup
            )
        return AccountsSnapshot(accounts=state.accounts, default=state.default)

    def get(self, name: str) -> Account:
        """The account called `name` (case-insensitively); `AccountNotFound` lists the others."""
        snapshot = self.load()
        account = snapshot.get(name)
        if account is None:
            raise AccountNotFound(name, snapshot.names)
        return account

    def default_account(self) -> Account | None:
        """The default account, or None when no account is stored (or the file is unusable)."""
        return self.load().default_account()

    # ---- changing

    def add_or_replace(self, account: Account, *, overwrite_corrupt: bool = False) -> tuple[Account, bool]:
        """Store a signed-in account; return it as stored and whether it replaced one.

        The same Puter user is recognised by uuid when both sides know it, else by username.
        Signing in again replaces identity and token but keeps the user's settings (name,
        tier override, enabled) and ``added_at``. A new account whose name is taken gets a
        suffix (``alice-2``). The first account stored becomes the default.
        """

        def change(state: _State) -> tuple[Account, bool]:
            now = self._now()
            for index, stored in enumerate(state.accounts):
                if _same_user(stored, account):
                    replaced = account.model_copy(
                        update={
                            "name": stored.name,
                            "uuid": account.uuid or stored.uuid,
                            "tier_override": stored.tier_override,
                            "enabled": stored.enabled,
                            "added_at": stored.added_at,
                            "updated_at": now,
                        }
                    )
                    state.accounts[index] = replaced
                    _normalise_default(state)
                    return replaced, True
            name = _free_name(account.name, [stored.name for stored in state.accounts])
            added = account.model_copy(update={"name": name, "added_at": now, "updated_at": now})
            state.accounts.append(added)
            _normalise_default(state)
            return added, False

        return self._change(change, overwrite_corrupt=overwrite_corrupt)

    def rename(self, old: str, new: str, *, overwrite_corrupt: bool = False) -> Account:
        """Give an account a new local name (the default follows it)."""
        try:
            new_name = validate_account_name(new)
        except ValueError as exc:
            raise AccountNameError(str(exc)) from None

        def change(state: _State) -> Account:
            index, account = self._lookup(state, old)
            clash = _find(state.accounts, new_name)
            if clash is not None and clash[0] != index:
                raise AccountNameError(
                    f"An account named {clash[1].name!r} already exists; choose another name."
                )
            renamed = account.model_copy(update={"name": new_name, "updated_at": self._now()})
            state.accounts[index] = renamed
            if state.default == account.name:
                state.default = new_name
            return renamed

        return self._change(change, overwrite_corrupt=overwrite_corrupt)

    def remove(self, name: str, *, overwrite_corrupt: bool = False) -> Account:
        """Forget an account and its token; if it was the default, the first one left is."""

        def change(state: _State) -> Account:
            index, account = self._lookup(state, name)
            del state.accounts[index]
            _normalise_default(state)
            return account

        return self._change(change, overwrite_corrupt=overwrite_corrupt)

    def remove_all(self, *, overwrite_corrupt: bool = False) -> list[Account]:
        """Forget every account; return those that were stored."""

        def change(state: _State) -> list[Account]:
            removed = list(state.accounts)
            state.accounts.clear()
            state.default = None
            return removed

        return self._change(change, overwrite_corrupt=overwrite_corrupt)

    def set_default(self, name: str, *, overwrite_corrupt: bool = False) -> Account:
        """Make `name` the account tried first."""

        def change(state: _State) -> Account:
            _, account = self._lookup(state, name)
            state.default = account.name
            return account

        return self._change(change, overwrite_corrupt=overwrite_corrupt)

    def set_enabled(self, name: str, enabled: bool, *, overwrite_corrupt: bool = False) -> Account:
        """Allow or forbid calling as `name` (kept across sign-ins)."""
        return self._update(name, {"enabled": enabled}, overwrite_corrupt=overwrite_corrupt)

    def set_tier_override(self, name: str, tier: Tier | None, *, overwrite_corrupt: bool = False) -> Account:
        """Set (or clear, with None) the user's word on the account's tier (kept across sign-ins)."""
        if tier is not None and tier not in STATED_TIERS:
            raise ValueError(f"tier must be one of {', '.join(STATED_TIERS)} or None, not {tier!r}")
        stated = None if tier is None else Tier(tier)
        return self._update(name, {"tier_override": stated}, overwrite_corrupt=overwrite_corrupt)

    # ---- internals

    def _now(self) -> datetime:
        return _as_utc(self._clock())

    def _lookup(self, state: _State, name: str) -> tuple[int, Account]:
        found = _find(state.accounts, name)
        if found is None:
            raise AccountNotFound(name, [account.name for account in state.accounts])
        return found

    def _update(self, name: str, fields: dict[str, Any], *, overwrite_corrupt: bool) -> Account:
        def change(state: _State) -> Account:
            index, account = self._lookup(state, name)
            updated = account.model_copy(update={**fields, "updated_at": self._now()})
            state.accounts[index] = updated
            return updated

        return self._change(change, overwrite_corrupt=overwrite_corrupt)

    def _change(self, change: Callable[[_State], _R], *, overwrite_corrupt: bool) -> _R:
        """Read, change and write back the file under the lock; nothing is written if `change` raises."""
        _ensure_private_dir(self.path.parent)
        with _exclusive_lock(self.lock_path, self.lock_timeout):
            state = self._read_for_change(overwrite_corrupt=overwrite_corrupt)
            result = change(state)
            self._remove_stale_temp_files()
            write_private_atomic(self.path, _serialise(state))
            return result

    def _read_for_change(self, *, overwrite_corrupt: bool) -> _State:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return _State([], None)
        except OSError as exc:
            raise AccountsError(
                f"Cannot read the accounts file {self.path} ({exc.strerror or exc}); nothing was changed."
            ) from None
        try:
            return _parse(raw)
        except _BadContent as bad:
            backup = self._keep_corrupt_copy(raw)
            if not overwrite_corrupt:
                raise CorruptAccountsFile(self.path, backup, bad.reason) from None
            logger.warning(
                "Replacing the unusable accounts file %s (%s); its old content is kept in %s",
                self.path,
                bad.reason,
                backup,
            )
            return _State([], None)

    def _remove_stale_temp_files(self) -> None:
        """Delete temp files left by a writer that crashed; safe because writers hold the lock."""
        pattern = f".{glob.escape(self.path.name)}.*.tmp"
        for leftover in self.path.parent.glob(pattern):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _tighten_permissions(self) -> None:
        """Bring a file someone loosened back to owner-only; best effort, reading must not fail."""
        if sys.platform == "win32":
            return
        with contextlib.suppress(OSError):
            if self.path.stat().st_mode & 0o077:
                os.chmod(self.path, PRIVATE_FILE_MODE)

    def _keep_corrupt_copy_locked(self, raw: bytes) -> Path | None:
        """`_keep_corrupt_copy` under the lock, so that concurrent readers make one copy, not two."""
        try:
            with _exclusive_lock(self.lock_path, self.lock_timeout):
                return self._keep_corrupt_copy(raw)
        except AccountsLocked:
            pass  # a duplicate copy is better than none
        except OSError:
            pass  # e.g. a read-only directory: the copy below fails the same way, and says so
        return self._keep_corrupt_copy(raw)

    def _keep_corrupt_copy(self, raw: bytes) -> Path | None:
        """Copy unusable content aside (owner-only), once per distinct content; None if impossible."""
        pattern = f"{glob.escape(self.path.name)}.corrupt-*"
        try:
            for existing in sorted(self.path.parent.glob(pattern)):
                with contextlib.suppress(OSError):
                    if existing.stat().st_size == len(raw) and existing.read_bytes() == raw:
                        return existing
        except OSError:
            pass
        stamp = self._now().strftime("%Y%m%dT%H%M%SZ")
        base = f"{self.path.name}.corrupt-{stamp}"
        for number in range(1, 1000):
            candidate = self.path.with_name(base if number == 1 else f"{base}-{number}")
            try:
                fd = os.open(
                    candidate,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                    PRIVATE_FILE_MODE,
                )
            except FileExistsError:
                continue
            except OSError as exc:
                logger.warning("Could not copy the unusable accounts file %s aside: %s", self.path, exc)
                return None
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(raw)
                    handle.flush()
                    os.fsync(handle.fileno())
                chmod_private(candidate, PRIVATE_FILE_MODE)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    candidate.unlink()  # a partial copy would pass for the real one later
                logger.warning("Could not copy the unusable accounts file %s aside: %s", self.path, exc)
                return None
            logger.warning(
                "The accounts file %s is unusable; its content was copied to %s", self.path, candidate
            )
            return candidate
        return None


def _same_user(stored: Account, incoming: Account) -> bool:
    """Whether two records are the same Puter user: by uuid when both know it, else username."""
    if stored.uuid and incoming.uuid:
        return stored.uuid == incoming.uuid
    return stored.username == incoming.username


def _free_name(wanted: str, taken: Sequence[str]) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`... whichever is not taken (case-insensitively)."""
    used = {name.casefold() for name in taken}
    if wanted.casefold() not in used:
        return wanted
    for number in range(2, len(used) + 3):
        suffix = f"-{number}"
        candidate = wanted[: _NAME_MAX - len(suffix)] + suffix
        if candidate.casefold() not in used:
            return candidate
    raise AssertionError("unreachable: more candidates than taken names")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# Read-only accounts, for a fleet of gateways (docs/configuration.md, "Accounts")

ACCOUNTS_ENV = "PUTER_MCP_ACCOUNTS"
"""The environment variable that may hold the accounts JSON itself (the file's format)."""


class ReadOnlyAccounts(AccountsError):
    """The accounts come from a read-only source (a file or PUTER_MCP_ACCOUNTS): not changed here."""


class FixedAccountsStore(AccountsStore):
    """Accounts read from a read-only source instead of the home's file: a file named by
    ``--accounts-file`` / ``[accounts] file`` (a secret mounted read-only into each replica), or
    the JSON held by ``PUTER_MCP_ACCOUNTS``. The format is the accounts file's own.

    Never written, and never needs to be writable: no lock file, no permission change, no copy
    of a bad file. A file is read again when it changes (a rotated secret); every change
    (`add_or_replace`, `remove`, ...) raises `ReadOnlyAccounts`.

    Build one with `from_file` or `from_json`, which raise `AccountsError` with a clear sentence
    when the source is missing or malformed.
    """

    def __init__(self, path: Path | None, text: bytes, *, source: str) -> None:
        super().__init__(path or Path(os.devnull))
        self.source = source
        self._file = path
        self._fixed = _parse_source(text, source)

    @classmethod
    def from_file(cls, path: Path | str) -> FixedAccountsStore:
        path = Path(path).expanduser()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise AccountsError(
                f"the accounts file {path} does not exist: check --accounts-file / [accounts] file "
                "(and, in a container, that the secret is mounted there)"
            ) from None
        except OSError as exc:
            raise AccountsError(
                f"the accounts file {path} cannot be read ({exc.strerror or exc}): it must be "
                "readable by the user puter-mcp runs as (it never needs to be writable)"
            ) from None
        return cls(path, raw, source=f"the accounts file {path}")

    @classmethod
    def from_json(cls, text: str) -> FixedAccountsStore:
        return cls(None, text.encode("utf-8"), source=ACCOUNTS_ENV)

    def __repr__(self) -> str:
        return f"FixedAccountsStore({self.source!r})"

    def version(self) -> tuple[int, int, int] | None:
        if self._file is None:
            return (0, 0, 0)  # the environment does not change while the process runs
        return super().version()

    def load(self) -> AccountsSnapshot:
        if self._file is not None:
            try:
                self._fixed = _parse_source(self._file.read_bytes(), self.source)
            except (OSError, AccountsError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                return AccountsSnapshot(problem=f"{self.source} cannot be used now: {reason}")
        return AccountsSnapshot(accounts=list(self._fixed.accounts), default=self._fixed.default)

    def _change(self, change: Callable[[_State], _R], *, overwrite_corrupt: bool) -> _R:
        raise ReadOnlyAccounts(
            f"this process's accounts come from {self.source}, which puter-mcp never changes: "
            "edit that source instead (or sign in without it, then copy the home's accounts.json)"
        )


def _parse_source(raw: bytes, source: str) -> _State:
    try:
        return _parse(raw)
    except _BadContent as bad:
        raise AccountsError(
            f"{source} cannot be used: {bad.reason}; it must hold the JSON the accounts file "
            f'has ({{"version": {FILE_VERSION}, "default": ..., "accounts": [...]}})'
        ) from None


def fixed_accounts(file: Path | None, env: Mapping[str, str]) -> FixedAccountsStore | None:
    """The read-only accounts this process is told to use instead of the home's, or None.

    Args:
        file: the `[accounts] file` setting (or ``--accounts-file``).
        env: where ``PUTER_MCP_ACCOUNTS`` is looked up.

    Raises:
        AccountsError: both are given, or the one given is missing or malformed.
    """
    text = env.get(ACCOUNTS_ENV)
    if file is not None and text:
        raise AccountsError(f"both an accounts file ({file}) and {ACCOUNTS_ENV} are given: use one of them")
    if file is not None:
        return FixedAccountsStore.from_file(file)
    if text:
        return FixedAccountsStore.from_json(text)
    return None


def fixed_accounts_source(file: Path | None, env: Mapping[str, str]) -> str | None:
    """Where read-only accounts would come from (for a refusal to edit them), without reading."""
    if file is not None:
        return f"the accounts file {file}"
    if env.get(ACCOUNTS_ENV):
        return ACCOUNTS_ENV
    return None
