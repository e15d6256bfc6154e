"""`puter-mcp keys create | list | revoke`: the gateway's API keys from the command line.

A created key goes to stdout alone (so ``KEY=$(puter-mcp keys create ci)`` works) and the
sentence saying it is shown only this time to stderr. No command takes a key as an argument:
argv is visible to every user of the machine (``ps``). The keys are where the gateway looks
for them (`puter_mcp.gateway.keyplace`: the machine's file, or the fleet's Redis). Imports
nothing of the HTTP server, so the command starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime

from puter_mcp.gateway.keyplace import open_key_store
from puter_mcp.gateway.keystore import (
    KeyLimits,
    KeyRecord,
    KeySpec,
    KeyStore,
    KeyStoreError,
    parse_expiry,
    parse_models,
)
from puter_mcp.settings import Paths, Settings

__all__ = ["configure_parser", "run"]


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of requests") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: a limit is at least 1 request (leave it out for none)")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `puter-mcp keys` to its sub-parser."""
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="Create a key; it is printed once.")
    create.add_argument("name", help="A name for the key (letters, digits, '.', '_', '-').")
    for flag, span in (("--rpm", "minute"), ("--rph", "hour"), ("--rpd", "day")):
        create.add_argument(flag, type=_limit, metavar="N", help=f"At most N requests per {span}.")
    create.add_argument("--models", metavar="A,B", help="Only these models (as clients name them).")
    create.add_argument(
        "--expires",
        metavar="DATE",
        help="YYYY-MM-DD (through that day, UTC), YYYY-MM-DDTHH:MM, or 30d / 12h.",
    )
    create.add_argument("--admin", action="store_true", help="The key may also manage keys (/v1/keys).")
    listing = actions.add_parser("list", help="List the keys (masked), their limits and last use.")
    listing.add_argument("--json", action="store_true", help="Print JSON.")
    revoke = actions.add_parser("revoke", help="Revoke a key: it stops working in every gateway at once.")
    revoke.add_argument("name", help="The key's name.")


def run(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    """Run `puter-mcp keys ACTION` on the key store the settings name (the machine's file, or
    the fleet's Redis); exit code 0, or 1 with one sentence on stderr."""
    try:
        store = open_key_store(settings, paths)
    except KeyStoreError as exc:
        print(f"puter-mcp: {exc}", file=sys.stderr)
        return 1
    return asyncio.run(_run(args, store))


async def _run(args: argparse.Namespace, store: KeyStore) -> int:
    try:
        if args.keys_action == "create":
            return await _create(args, store)
        if args.keys_action == "list":
            return await _list(args, store)
        record = await store.revoke(args.name, now=time.time())
        print(f"Revoked the key {record.name!r} ({record.hint}): it stops working at once, in every gateway.")
        return 0
    except KeyStoreError as exc:
        print(f"puter-mcp: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.aclose()


async def _create(args: argparse.Namespace, store: KeyStore) -> int:
    now = time.time()
    spec = KeySpec(
        name=args.name,
        limits=KeyLimits(rpm=args.rpm, rph=args.rph, rpd=args.rpd),
        models=parse_models(args.models),
        expires=None if args.expires is None else parse_expiry(args.expires, now=now),
        admin=args.admin,
    )
    record, secret = await store.create(spec, now=now)
    print(f"Created the key {record.name!r} ({_summary(record)}):", file=sys.stderr, flush=True)
    print(secret, flush=True)
    print(
        "This is the only time the key is shown: copy it now. puter-mcp keeps only a digest of "
        "it; if it is lost, revoke it and create another.",
        file=sys.stderr,
        flush=True,
    )
    return 0


def _when(at: float | None, never: str) -> str:
    if at is None:
        return never
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


def _summary(record: KeyRecord) -> str:
    models = "any model" if record.models is None else "models " + ",".join(record.models)
    parts = [f"limits {record.limits.describe()}", models, f"expires {_when(record.expires, 'never')}"]
    if record.admin:
        parts.append("admin")
    return "; ".join(parts)


async def _list(args: argparse.Namespace, store: KeyStore) -> int:
    records = await store.list()
    if args.json:
        print(json.dumps([record.public() for record in records], indent=2))
        return 0
    if not records:
        print("No API keys yet: create one with `puter-mcp keys create NAME`.")
        return 0
    now = time.time()
    header = ("NAME", "KEY", "LIMITS", "MODELS", "EXPIRES (UTC)", "ADMIN", "LAST USED (UTC)")
    rows = [
        (
            record.name,
            record.hint,
            record.limits.describe(),
            "any" if record.models is None else ",".join(record.models),
            _when(record.expires, "never") + (" (expired)" if record.expired(now) else ""),
            "yes" if record.admin else "no",
            _when(record.last_used, "never"),
        )
        for record in records
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0
