"""``editgate keys create|list|revoke|webhook-secret``: the gateway's API keys, in a deployed
stack (``--stack``: its keys table, and an API Gateway key in its usage plan for each) or in a
running ``editgate serve`` (``--table``: found by itself). A new key is shown once; only its hash
is kept. Each key has a webhook secret (``whsec_…``) that signs its jobs' callbacks: shown once by
``create``, and made anew (the old one stops signing) by ``webhook-secret``."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from editgate_local.cli_support import (
    CliError,
    add_aws_options,
    add_command,
    check_local_name,
    local_or_deployed,
    not_blank,
    positive,
    stack_outputs,
    use_aws,
    use_local_stack,
)

if TYPE_CHECKING:
    from editgate.adapters.keys import KeyRecord, KeyTable

LOCAL_TABLE = "editgate-local-api-keys"  # stack.KEYS_TABLE, without importing the stack


@dataclass(frozen=True)
class KeyPlace:
    """Where a stack keeps its keys: the table, and the usage plan (a deployed stack's)."""

    table: KeyTable
    usage_plan: str | None


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands,
        "keys",
        "create, list and revoke the gateway's API keys",
        "  editgate keys create --owner alice                    (the running editgate serve)\n"
        "  editgate keys create --owner team-a --stack editgate  (a deployed stack)\n"
        "  editgate keys list --stack editgate --region eu-west-1 --json\n"
        "  editgate keys revoke key_0123456789abcdef --stack editgate\n"
        "  editgate keys webhook-secret --id key_0123456789abcdef --stack editgate",
    )
    _where(parser, argparse_default=None)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = add_command(
        verbs,
        "create",
        "a new key, shown once (only its hash is kept)",
        "  editgate keys create --owner alice\n"
        "  editgate keys create --owner team-a --expires-days 90 --stack editgate",
    )
    create.add_argument(
        "--owner", required=True, type=not_blank, help="who the key is for: a team, a service (required)"
    )
    create.add_argument(
        "--expires-days",
        type=positive,
        default=None,
        metavar="DAYS",
        help="days until it stops working, above 0 (default: never)",
    )
    listing = add_command(
        verbs,
        "list",
        "every key's id, owner, dates and state (never the key)",
        "  editgate keys list\n  editgate keys list --stack editgate --json",
    )
    listing.add_argument("--json", action="store_true", help="one JSON array, for scripts (default: a table)")
    revoke = add_command(
        verbs,
        "revoke",
        "refuse a key from now on",
        "  editgate keys revoke key_0123456789abcdef\n"
        "  editgate keys revoke key_0123456789abcdef --stack editgate",
    )
    revoke.add_argument("key_id", help="the key's id, as create and list show it (key_...)")
    secret = verbs.add_parser(
        "webhook-secret",
        help="a new secret signing the key's job callbacks, shown once (the old one stops signing)",
        description="a new secret signing the key's job callbacks, shown once (the old one stops signing)",
    )
    secret.add_argument("--id", required=True, dest="key_id", metavar="KEY_ID",
                        help="the key's id, as create and list show it (key_...) (required)")  # fmt: skip
    for verb in (create, listing, revoke, secret):
        _where(verb, argparse_default=argparse.SUPPRESS)  # also accepted after the verb
    parser.set_defaults(run=main)


def _where(parser: argparse.ArgumentParser, argparse_default: Any) -> None:
    parser.add_argument(
        "--stack",
        default=argparse_default,
        metavar="NAME",
        help="a deployed editgate stack's name (default: the running editgate serve)",
    )
    parser.add_argument(
        "--table",
        default=argparse_default,
        metavar="TABLE",
        help=f"the local stack's keys table, {LOCAL_TABLE} (default: the running editgate serve's)",
    )
    add_aws_options(parser, argparse_default)


def main(args: argparse.Namespace) -> int:
    place = key_place(args.stack, args.table, args.region, args.profile)
    if args.verb == "create":
        expires = int(time.time() + args.expires_days * 86400) if args.expires_days else None
        key, record = create_key(place, args.owner, expires)
        secret = rotate_webhook_secret(place, record.key_id)
        print(f"key id: {record.key_id}\nowner:  {record.owner}\nkey:    {key}\nwebhook secret: {secret}")
        print("The key is shown only now: editgate keeps its hash alone. The webhook secret signs the")
        print("callbacks of this key's jobs (editgate keys webhook-secret --id KEY_ID makes a new one).")
        return 0
    if args.verb == "list":
        return _list(place, as_json=args.json)
    if args.verb == "webhook-secret":
        if not any(record.key_id == args.key_id for record in _records(place)):
            raise CliError(f"no key {args.key_id} in this stack: `editgate keys list` shows the ids")
        print(f"webhook secret: {rotate_webhook_secret(place, args.key_id)}")
        print("Shown only now; the key's callbacks are signed with it from the next delivery on.")
        return 0
    revoke_key(place, args.key_id)
    print(f"revoked {args.key_id} (API Gateway's cached answers for it end within 5 minutes)")
    return 0


def key_place(
    stack: str | None, table: str | None, region: str | None = None, profile: str | None = None
) -> KeyPlace:
    """A deployed stack's keys (``stack``), or the local stack's (``table``, or a running serve)."""
    local = local_or_deployed(stack, table, "--table")
    from editgate.adapters.keys import KeyTable

    if local:
        check_local_name(table, LOCAL_TABLE, "--table")
        use_local_stack()
        return KeyPlace(KeyTable(LOCAL_TABLE), None)
    use_aws(region, profile)
    outputs = stack_outputs(str(stack), "ApiKeysTableName", "UsagePlanId")
    return KeyPlace(KeyTable(outputs["ApiKeysTableName"]), outputs["UsagePlanId"])


def create_key(place: KeyPlace, owner: str, expires_at: int | None = None) -> tuple[str, KeyRecord]:
    """A new key, stored hashed (and, in a deployed stack, its usage-plan key)."""
    from editgate.adapters.keys import new_record

    key, record = new_record(owner, expires_at=expires_at)
    if place.usage_plan:  # API Gateway throttles and counts the key by this usage-plan key
        import boto3

        gateway = boto3.client("apigateway")
        created = gateway.create_api_key(name=record.key_id, value=record.usage_key, enabled=True)
        gateway.create_usage_plan_key(usagePlanId=place.usage_plan, keyId=created["id"], keyType="API_KEY")
    place.table.put(record.key_hash, record.model_dump())
    return key, record


def rotate_webhook_secret(place: KeyPlace, key_id: str) -> str:
    """A new webhook secret for the key, replacing any earlier one."""
    from editgate.adapters.keys import WebhookSecrets

    return WebhookSecrets(place.table.name).rotate(key_id)


def revoke_key(place: KeyPlace, key_id: str) -> None:
    found = [record for record in _records(place) if record.key_id == key_id]
    if not found:
        raise CliError(f"no key {key_id} in this stack: `editgate keys list` shows the ids")
    place.table.put(found[0].key_hash, found[0].model_copy(update={"revoked": True}).model_dump())


def _records(place: KeyPlace) -> list[KeyRecord]:
    from editgate.adapters.keys import KeyRecord

    return [KeyRecord.model_validate(r) for r in place.table.records()]


def _list(place: KeyPlace, *, as_json: bool) -> int:
    now = time.time()
    rows = [
        {
            "key_id": record.key_id,
            "owner": record.owner,
            "created": _day(record.created),
            "expires": _day(record.expires_at),
            "state": "revoked" if record.revoked else "active" if record.usable(now) else "expired",
        }
        for record in sorted(_records(place), key=lambda r: r.created)
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(
            f"{row['key_id']}  {row['owner']:20}  created {row['created']}  "
            f"expires {row['expires']}  {row['state']}"
        )
    return 0


def _day(epoch: int | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d") if epoch else "never"
