"""``editgate keys create|list|revoke``: the gateway's API keys, in a deployed stack (``--stack``:
its keys table, and an API Gateway key in its usage plan for each) or in a local stack's moto
(``--table``, with ``AWS_ENDPOINT_URL`` set as ``editgate serve`` prints). A new key is shown
once; only its hash is kept."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import boto3

from editgate.adapters.keys import KeyRecord, KeyTable, new_record


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("keys", help="create, list and revoke the gateway's API keys")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a deployed editgate stack's name")
    where.add_argument("--table", help="a keys table reached through AWS_ENDPOINT_URL (a local stack)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", help="a new key, shown once")
    create.add_argument("--owner", required=True, help="who the key is for (a team, a service)")
    create.add_argument("--expires-days", type=float, default=None)
    verbs.add_parser("list", help="every key's id, owner, dates and state (never the key)")
    revoke = verbs.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key_id")


def main(args: argparse.Namespace) -> int:
    table, usage_plan = _where(args)
    if args.verb == "create":
        expires = int(time.time() + args.expires_days * 86400) if args.expires_days else None
        key, record = new_record(args.owner, expires_at=expires)
        if usage_plan:  # API Gateway throttles and counts the key by this usage-plan key
            gateway = boto3.client("apigateway")
            created = gateway.create_api_key(name=record.key_id, value=record.usage_key, enabled=True)
            gateway.create_usage_plan_key(usagePlanId=usage_plan, keyId=created["id"], keyType="API_KEY")
        table.put(record.key_hash, record.model_dump())
        print(f"key id: {record.key_id}\nowner:  {record.owner}\nkey:    {key}")
        print("The key is shown only now: editgate keeps its hash alone.")
        return 0
    records = [KeyRecord.model_validate(r) for r in table.records()]
    if args.verb == "list":
        for record in sorted(records, key=lambda r: r.created):
            state = "revoked" if record.revoked else "expired" if not record.usable(time.time()) else "active"
            print(f"{record.key_id}  {record.owner:20}  created {_day(record.created)}  "
                  f"expires {_day(record.expires_at)}  {state}")  # fmt: skip
        return 0
    found = [r for r in records if r.key_id == args.key_id]
    if not found:
        print(f"no key {args.key_id}")
        return 1
    table.put(found[0].key_hash, found[0].model_copy(update={"revoked": True}).model_dump())
    print(f"revoked {args.key_id} (API Gateway's cached answers for it end within 5 minutes)")
    return 0


def _where(args: argparse.Namespace) -> tuple[KeyTable, str | None]:
    if args.table:
        return KeyTable(args.table), None
    stacks = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return KeyTable(outputs["ApiKeysTableName"]), outputs["UsagePlanId"]


def _day(epoch: int | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d") if epoch else "never"
