"""Tests of the accounts store (accounts/store.py) and token masking (accounts/secrets.py).

Everything runs on files under pytest's tmp_path; the concurrency and crash tests start real
Python processes, because the lock and the atomic replace only matter between processes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from puter_mcp.accounts import store as store_module
from puter_mcp.accounts.secrets import FULL_MASK, MASK_GAP, mask_token, redact
from puter_mcp.accounts.store import (
    Account,
    AccountNameError,
    AccountNotFound,
    AccountsError,
    AccountsLocked,
    AccountsStore,
    CorruptAccountsFile,
    default_accounts_path,
)

POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits and flock")

TOKEN_A = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyIjoiYWxpY2UifQ.alice-signature-AAAA"
TOKEN_A2 = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyIjoiYWxpY2UiLCJuIjoyfQ.alice-signature-NEW2"
TOKEN_B = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyIjoiYm9iIn0.bob-signature-BBBB"


class FakeClock:
    """A clock the test moves by hand, so timestamps and backup names are predictable."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    # A directory that does not exist yet: the store must create it, owner-only.
    return tmp_path / "data" / "puter-mcp" / "accounts.json"


@pytest.fixture
def store(path: Path, clock: FakeClock) -> AccountsStore:
    return AccountsStore(path, clock=clock, lock_timeout=5)


def alice(token: str = TOKEN_A, **extra: object) -> Account:
    fields: dict[str, object] = {"username": "alice", "token": token, "uuid": "uuid-alice", "tier": "free"}
    fields.update(extra)
    return Account.model_validate(fields)


def bob(token: str = TOKEN_B) -> Account:
    return Account.create(username="bob", token=token, uuid="uuid-bob", tier="paid")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def backups_of(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".corrupt-*"))


def temp_files_of(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


# --------------------------------------------------------------------------------------------
# Round trip and the file format


def test_missing_file_is_an_empty_list_and_no_problem(store: AccountsStore, path: Path) -> None:
    snapshot = store.load()
    assert snapshot.accounts == []
    assert snapshot.default is None
    assert snapshot.problem is None
    assert store.default_account() is None
    assert not path.parent.exists(), "reading must not create anything"


def test_a_file_with_a_byte_order_mark_is_read_not_set_aside(store: AccountsStore, path: Path) -> None:
    # A file saved by a Windows editor starts with a BOM: that is not damage.
    store.add_or_replace(alice())
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    snapshot = store.load()
    assert snapshot.problem is None
    assert [account.username for account in snapshot.accounts] == ["alice"]
    assert not list(path.parent.glob("*.corrupt-*"))


def test_round_trip_keeps_every_field(store: AccountsStore, path: Path, clock: FakeClock) -> None:
    stored, replaced = store.add_or_replace(alice(is_temp=True, tier="temp"))
    assert replaced is False
    store.set_tier_override("alice", "paid")
    store.set_enabled("alice", False)

    again = AccountsStore(path).load()
    assert again.problem is None
    [account] = again.accounts
    assert account.name == "alice"
    assert account.username == "alice"
    assert account.uuid == "uuid-alice"
    assert account.token.get_secret_value() == TOKEN_A
    assert account.is_temp is True
    assert account.tier == "temp"
    assert account.tier_override == "paid"
    assert account.effective_tier == "paid"
    assert account.enabled is False
    assert account.added_at == clock.now == stored.added_at
    assert again.default == "alice"


def test_file_shape_is_versioned_document_with_plain_token(store: AccountsStore, path: Path) -> None:
    store.add_or_replace(alice())
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["version"] == 1
    assert document["default"] == "alice"
    assert [record["token"] for record in document["accounts"]] == [TOKEN_A]
    assert document["accounts"][0]["added_at"] == "2025-01-02T03:04:05Z"


def test_name_defaults_to_username_and_is_validated() -> None:
    assert Account.create(username="carol_99", token="x" * 30).name == "carol_99"
    assert Account.create(username="carol", token="x" * 30, name="work").name == "work"
    # A username that is not a valid name still yields one.
    assert Account.create(username="-odd name!", token="x" * 30).name == "odd-name-"
    with pytest.raises(ValidationError):
        Account.create(username="carol", token="x" * 30, name="-starts-with-dash")
    with pytest.raises(ValidationError):
        Account.create(username="carol", token="   ")


def test_token_is_stripped_of_pasted_whitespace() -> None:
    account = Account.create(username="carol", token=f"  {TOKEN_A}\n")
    assert account.token.get_secret_value() == TOKEN_A


def test_default_accounts_path_is_in_the_data_dir() -> None:
    import platformdirs

    expected = Path(platformdirs.user_data_dir("puter-mcp", appauthor=False))
    assert default_accounts_path() == expected / "accounts.json"


# --------------------------------------------------------------------------------------------
# Permissions and atomicity


@POSIX_ONLY
def test_owner_only_permissions_after_each_write(store: AccountsStore, path: Path) -> None:
    writes = [
        lambda: store.add_or_replace(alice()),
        lambda: store.add_or_replace(bob()),
        lambda: store.rename("bob", "robert"),
        lambda: store.set_default("robert"),
        lambda: store.set_enabled("alice", False),
        lambda: store.set_tier_override("alice", "paid"),
        lambda: store.add_or_replace(alice(TOKEN_A2)),
        lambda: store.remove("robert"),
        lambda: store.remove_all(),
    ]
    for write in writes:
        write()
        assert mode_of(path) == 0o600
        assert mode_of(path.parent) == 0o700
        assert mode_of(store.lock_path) == 0o600


@POSIX_ONLY
def test_permissions_do_not_depend_on_the_umask(path: Path) -> None:
    # A umask that would strip the owner's own write bit: only an explicit chmod gives 0600/0700.
    previous = os.umask(0o277)
    try:
        AccountsStore(path).add_or_replace(alice())
    finally:
        os.umask(previous)
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700


@POSIX_ONLY
def test_loading_tightens_a_loosened_file(store: AccountsStore, path: Path) -> None:
    store.add_or_replace(alice())
    path.chmod(0o644)
    store.load()
    assert mode_of(path) == 0o600


def test_failed_replace_leaves_old_file_intact(
    store: AccountsStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_or_replace(alice())
    before = path.read_bytes()

    def crash(source: object, target: object) -> None:
        raise OSError("simulated crash between temp write and replace")

    monkeypatch.setattr(store_module.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.add_or_replace(bob())
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert temp_files_of(path) == [], "the temp file of a failed write is removed"
    assert store.load().names == ["alice"]


def test_process_killed_before_replace_leaves_old_file_intact(store: AccountsStore, path: Path) -> None:
    store.add_or_replace(alice())
    before = path.read_bytes()
    # The child writes its temp file completely, then dies (os._exit) instead of replacing.
    child = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from puter_mcp.accounts.store import Account, AccountsStore
        os.replace = lambda source, target: os._exit(17)
        store = AccountsStore(Path(sys.argv[1]))
        store.add_or_replace(Account.create(username="bob", token="b" * 40))
        """
    )
    result = subprocess.run([sys.executable, "-c", child, str(path)], timeout=60, check=False)
    assert result.returncode == 17
    assert path.read_bytes() == before
    assert len(temp_files_of(path)) == 1, "the crashed writer left its temp file behind"

    # The next writer (holding the lock, so no write can be in progress) cleans it up.
    store.add_or_replace(bob())
    assert temp_files_of(path) == []
    assert store.load().names == ["alice", "bob"]


def test_a_change_that_fails_writes_nothing(store: AccountsStore, path: Path) -> None:
    store.add_or_replace(alice())
    before = path.read_bytes()
    with pytest.raises(AccountNotFound):
        store.remove("nobody")
    assert path.read_bytes() == before


# --------------------------------------------------------------------------------------------
# Adding, replacing and settings


def test_signing_in_again_replaces_token_and_keeps_settings(store: AccountsStore, clock: FakeClock) -> None:
    first, _ = store.add_or_replace(alice())
    store.rename("alice", "personal")
    store.set_tier_override("personal", "paid")
    store.set_enabled("personal", False)
    clock.advance(3600)

    stored, replaced = store.add_or_replace(alice(TOKEN_A2, tier="paid", is_temp=False))

    assert replaced is True
    assert stored.name == "personal"
    assert stored.token.get_secret_value() == TOKEN_A2
    assert stored.tier == "paid"
    assert stored.tier_override == "paid"
    assert stored.enabled is False
    assert stored.added_at == first.added_at
    assert stored.updated_at == clock.now
    snapshot = store.load()
    assert snapshot.names == ["personal"]
    assert snapshot.accounts[0] == stored


def test_same_user_is_matched_by_uuid_even_if_username_changed(store: AccountsStore) -> None:
    store.add_or_replace(alice())
    stored, replaced = store.add_or_replace(
        Account.create(username="alice_renamed", token=TOKEN_A2, uuid="uuid-alice")
    )
    assert replaced is True
    assert stored.name == "alice"
    assert stored.username == "alice_renamed"
    assert len(store.load().accounts) == 1


def test_same_user_is_matched_by_username_when_uuid_unknown(store: AccountsStore) -> None:
    store.add_or_replace(Account.create(username="alice", token=TOKEN_A))
    stored, replaced = store.add_or_replace(alice(TOKEN_A2))
    assert replaced is True
    assert stored.uuid == "uuid-alice", "a uuid learned later is recorded"
    # And a later sign-in that does not report a uuid keeps the known one.
    stored, replaced = store.add_or_replace(Account.create(username="alice", token=TOKEN_A))
    assert replaced is True
    assert stored.uuid == "uuid-alice"


def test_a_different_user_with_a_clashing_name_gets_a_suffix(store: AccountsStore) -> None:
    store.add_or_replace(alice())
    other, replaced = store.add_or_replace(Account.create(username="alice", token=TOKEN_B, uuid="uuid-other"))
    assert replaced is False
    assert other.name == "alice-2"
    third, _ = store.add_or_replace(Account.create(username="ALICE", token="c" * 40, uuid="uuid-third"))
    assert third.name == "ALICE-3", "names are unique regardless of case"
    assert store.load().names == ["alice", "alice-2", "ALICE-3"]


def test_first_account_becomes_the_default(store: AccountsStore) -> None:
    store.add_or_replace(alice())
    store.add_or_replace(bob())
    assert store.load().default == "alice"
    default = store.default_account()
    assert default is not None
    assert default.name == "alice"


def test_set_default_rename_and_remove(store: AccountsStore) -> None:
    store.add_or_replace(alice())
    store.add_or_replace(bob())

    assert store.set_default("BOB").name == "bob", "lookups ignore case"
    assert store.load().default == "bob"

    store.rename("bob", "robert")
    snapshot = store.load()
    assert snapshot.names == ["alice", "robert"]
    assert snapshot.default == "robert", "the default follows a rename"

    removed = store.remove("robert")
    assert removed.username == "bob"
    snapshot = store.load()
    assert snapshot.names == ["alice"]
    assert snapshot.default == "alice", "the first account left becomes the default"

    assert [account.name for account in store.remove_all()] == ["alice"]
    snapshot = store.load()
    assert snapshot.accounts == []
    assert snapshot.default is None


def test_rename_rejects_taken_and_invalid_names(store: AccountsStore) -> None:
    store.add_or_replace(alice())
    store.add_or_replace(bob())
    with pytest.raises(AccountNameError, match="already exists"):
        store.rename("bob", "Alice")
    with pytest.raises(AccountNameError, match="not a valid account name"):
        store.rename("bob", "has space")
    # Changing only the case of one's own name is allowed.
    assert store.rename("bob", "Bob").name == "Bob"


def test_unknown_names_raise_account_not_found_listing_known_names(store: AccountsStore) -> None:
    with pytest.raises(AccountNotFound, match="no account is signed in"):
        store.set_default("carol")
    store.add_or_replace(alice())
    store.add_or_replace(bob())
    for call in (
        lambda: store.remove("carol"),
        lambda: store.rename("carol", "x"),
        lambda: store.set_default("carol"),
        lambda: store.set_enabled("carol", True),
        lambda: store.set_tier_override("carol", None),
        lambda: store.get("carol"),
    ):
        with pytest.raises(AccountNotFound, match="Known accounts: alice, bob") as caught:
            call()
        assert caught.value.known == ["alice", "bob"]
        assert isinstance(caught.value, AccountsError)


def test_tier_override_is_checked_and_clearable(store: AccountsStore) -> None:
    store.add_or_replace(alice())
    with pytest.raises(ValueError, match="tier must be one of"):
        store.set_tier_override("alice", "gold")  # type: ignore[arg-type]
    assert store.set_tier_override("alice", "paid").effective_tier == "paid"
    assert store.set_tier_override("alice", None).effective_tier == "free"


# --------------------------------------------------------------------------------------------
# Corrupt files


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'{"version": 1, "default": null, "accounts": {}}', '"accounts" is not a list'),
        (b'{"version": 2, "default": null, "accounts": []}', "written by a newer puter-mcp"),
        (b'{"default": null, "accounts": []}', "format version is missing"),
        (b'{"version": true, "default": null, "accounts": []}', "format version is missing"),
        (b'{"version": 1, "default": 3, "accounts": []}', '"default" is neither'),
        (b'{"version": 1, "default": null, "accounts": [{"username": "x"}]}', "account #1 is invalid"),
    ],
)
def test_corrupt_file_is_copied_aside_and_reported(
    store: AccountsStore, path: Path, content: bytes, reason: str
) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    snapshot = store.load()

    assert snapshot.accounts == []
    assert snapshot.problem is not None
    assert reason in snapshot.problem
    backup = snapshot.backup_path
    assert backup is not None
    assert backup == path.with_name("accounts.json.corrupt-20250102T030405Z")
    assert str(backup) in snapshot.problem
    assert "puter-mcp login" in snapshot.problem
    assert backup.read_bytes() == content
    assert path.read_bytes() == content, "loading never changes the corrupt file"
    if sys.platform != "win32":
        assert mode_of(backup) == 0o600


def test_corrupt_content_is_copied_once_per_distinct_content(
    store: AccountsStore, path: Path, clock: FakeClock
) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{broken")
    first = store.load().backup_path
    clock.advance(60)
    assert store.load().backup_path == first
    assert AccountsStore(path, clock=clock).load().backup_path == first
    assert backups_of(path) == [first]

    path.write_bytes(b"{broken differently")
    second = store.load().backup_path
    assert second is not None
    assert second != first
    assert len(backups_of(path)) == 2


def test_same_second_backups_do_not_collide(store: AccountsStore, path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{one")
    first = store.load().backup_path
    path.write_bytes(b"{two")
    second = store.load().backup_path
    assert first is not None
    assert second == first.with_name(first.name + "-2")
    assert second is not None
    assert second.read_bytes() == b"{two"


def test_write_to_corrupt_file_is_refused_without_overwrite(store: AccountsStore, path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{broken")

    with pytest.raises(CorruptAccountsFile) as caught:
        store.add_or_replace(alice())

    assert path.read_bytes() == b"{broken", "never overwritten silently"
    backup = caught.value.backup_path
    assert backup is not None
    assert backup.read_bytes() == b"{broken"
    assert str(backup) in str(caught.value)
    assert backups_of(path) == [backup]


def test_overwrite_corrupt_replaces_it_and_keeps_the_backup(store: AccountsStore, path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{broken")
    backup = store.load().backup_path

    stored, replaced = store.add_or_replace(alice(), overwrite_corrupt=True)

    assert replaced is False
    assert store.load().problem is None
    assert store.load().names == [stored.name]
    assert backups_of(path) == [backup], "the earlier backup is reused, not duplicated"
    assert backup is not None
    assert backup.read_bytes() == b"{broken"


def test_problem_text_never_quotes_a_token(store: AccountsStore, path: Path) -> None:
    # A record without a username: pydantic would normally quote the whole record in its error.
    document = {"version": 1, "default": None, "accounts": [{"token": TOKEN_A, "tier": TOKEN_B}]}
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document), encoding="utf-8")

    snapshot = store.load()
    assert snapshot.problem is not None
    assert "username" in snapshot.problem
    with pytest.raises(CorruptAccountsFile) as caught:
        store.set_default("alice")
    for text in (snapshot.problem, str(caught.value)):
        assert TOKEN_A not in text
        assert TOKEN_B not in text


def test_duplicate_names_in_the_file_are_corrupt(store: AccountsStore, path: Path) -> None:
    record = json.loads(alice().model_dump_json())
    record["token"] = TOKEN_A
    twin = dict(record, name="ALICE", uuid="other")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "default": None, "accounts": [record, twin]}))
    problem = store.load().problem
    assert problem is not None
    assert "two accounts are named" in problem


def test_empty_file_is_no_accounts_not_corruption(store: AccountsStore, path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    snapshot = store.load()
    assert snapshot.problem is None
    assert snapshot.accounts == []
    assert backups_of(path) == []


def test_default_naming_no_account_falls_back_to_the_first(store: AccountsStore, path: Path) -> None:
    store.add_or_replace(alice())
    document = json.loads(path.read_text())
    document["default"] = "ghost"
    path.write_text(json.dumps(document))
    assert store.load().default == "alice"


def test_unreadable_file_is_reported_not_raised(store: AccountsStore, path: Path) -> None:
    # A directory where the file should be: unreadable even for root (unlike chmod 0).
    path.mkdir(parents=True)
    snapshot = store.load()
    assert snapshot.accounts == []
    assert snapshot.problem is not None
    assert "cannot be read" in snapshot.problem
    with pytest.raises(AccountsError, match="nothing was changed"):
        store.add_or_replace(bob())
    assert path.is_dir()
    assert backups_of(path) == []


# --------------------------------------------------------------------------------------------
# Locking and concurrency


@pytest.fixture
def held_lock(store: AccountsStore) -> Iterator[None]:
    """Hold the store's lock from a separate descriptor, as another process would."""
    import fcntl

    store.lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(store.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@POSIX_ONLY
def test_a_held_lock_gives_a_clear_error_naming_the_lock_file(path: Path, held_lock: None) -> None:
    impatient = AccountsStore(path, lock_timeout=0.05)
    with pytest.raises(AccountsLocked) as caught:
        impatient.add_or_replace(alice())
    assert str(impatient.lock_path) in str(caught.value)
    assert not path.exists(), "nothing was written without the lock"
    # Reading needs no lock.
    assert impatient.load().accounts == []


CHILD_ADDS_ACCOUNTS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from puter_mcp.accounts.store import Account, AccountsStore

    path, index, go, per_child = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    for _ in range(6000):  # wait (at most ~60 s) for the start signal so that all run at once
        if go.exists():
            break
        time.sleep(0.01)
    store = AccountsStore(path, lock_timeout=60)
    for k in range(per_child):
        store.add_or_replace(
            Account.create(
                username=f"user{index}_{k}", token=f"token-{index}-{k}-" + "x" * 40, uuid=f"u{index}-{k}"
            )
        )
    """
)


@pytest.mark.slow
def test_concurrent_processes_never_lose_an_account(path: Path, tmp_path: Path) -> None:
    processes, per_child = 8, 5
    go = tmp_path / "go"
    argv = [sys.executable, "-c", CHILD_ADDS_ACCOUNTS, str(path)]
    children = [subprocess.Popen([*argv, str(i), str(go), str(per_child)]) for i in range(processes)]
    try:
        go.touch()
        codes = [child.wait(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
    assert codes == [0] * processes

    json.loads(path.read_text(encoding="utf-8"))  # valid JSON
    snapshot = AccountsStore(path).load()
    assert snapshot.problem is None
    expected = {f"user{i}_{k}" for i in range(processes) for k in range(per_child)}
    assert {account.username for account in snapshot.accounts} == expected
    assert len(snapshot.accounts) == processes * per_child
    assert snapshot.default in expected
    assert temp_files_of(path) == []
    if sys.platform != "win32":
        assert mode_of(path) == 0o600


def test_threads_of_one_process_exclude_each_other(path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = AccountsStore(path, lock_timeout=60)

    def add(i: int) -> None:
        store.add_or_replace(Account.create(username=f"t{i}", token=f"token-{i}-" + "y" * 40))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(add, range(24)))
    assert sorted(store.load().names) == sorted(f"t{i}" for i in range(24))


# --------------------------------------------------------------------------------------------
# Secrets never shown


def test_account_repr_str_and_dumps_never_contain_the_token() -> None:
    account = alice()
    snapshot_repr = repr(store_module.AccountsSnapshot(accounts=[account], default="alice"))
    for text in (
        repr(account),
        str(account),
        str(account.model_dump()),
        str(account.model_dump(mode="json")),
        account.model_dump_json(),
        snapshot_repr,
    ):
        assert TOKEN_A not in text
        assert TOKEN_A[-8:] not in text
    assert account.masked_token == f"{TOKEN_A[:4]}{MASK_GAP}{TOKEN_A[-4:]}"


def test_validation_errors_never_quote_the_token() -> None:
    with pytest.raises(ValidationError) as caught:
        Account.model_validate({"token": TOKEN_A, "tier": "gold"})
    assert TOKEN_A not in str(caught.value)


def test_mask_token_shows_at_most_the_two_ends() -> None:
    assert mask_token(TOKEN_A) == TOKEN_A[:4] + "…" + TOKEN_A[-4:]
    assert mask_token(SecretStr(TOKEN_A)) == mask_token(TOKEN_A)
    assert mask_token("short-token") == FULL_MASK
    assert mask_token("") == FULL_MASK
    assert mask_token("a" * 23) == FULL_MASK
    assert mask_token("abcd" + "x" * 16 + "wxyz") == "abcd…wxyz"


@given(st.text(min_size=0, max_size=300))
def test_mask_never_reveals_more_than_eight_characters(token: str) -> None:
    masked = mask_token(token)
    if masked == FULL_MASK:
        return
    assert len(token) >= 24
    assert masked == token[:4] + MASK_GAP + token[-4:]


def test_redact_masks_known_tokens_jwts_and_bearer_values() -> None:
    text = f"calling as {TOKEN_B}; header Authorization: Bearer opaque-credential-1234567890"
    redacted = redact(text, [SecretStr(TOKEN_B)])
    assert TOKEN_B not in redacted
    assert mask_token(TOKEN_B) in redacted
    assert "opaque-credential-1234567890" not in redacted
    assert "Bearer opaq…7890" in redacted

    # A JWT nobody told us about is caught by its shape.
    assert TOKEN_A not in redact(f"token={TOKEN_A}")
    # A known non-JWT token, and the longer of two overlapping tokens, are masked whole.
    short, long_ = "k" * 30, "k" * 30 + "-extended-suffix"
    redacted = redact(f"a {long_} b {short} c", [short, long_])
    assert "kkkk…ffix" in redacted
    assert "kkkk…kkkk" in redacted
    assert "extended" not in redacted
    # Redacting twice changes nothing more, and plain text is left alone.
    assert redact(redact(text, [TOKEN_B]), [TOKEN_B]) == redact(text, [TOKEN_B])
    assert redact("nothing secret here", ["", TOKEN_A]) == "nothing secret here"
