"""Writes the ready-made Lambda events in events/: ``python -m editgate_local.events``.

``events/edit_api``: the API Gateway REST proxy events the front (and real API Gateway) makes,
for ``sam local invoke EditApiFunction -e events/edit_api/<name>.json``, with the context the
authorizer gave them. ``events/authorizer``: the REQUEST authorizer's events, for
``sam local invoke AuthorizerFunction`` (the key ``sk-local`` is the local stack's). ``events/batch_edit``:
SQS records as the batch queue delivers them (S3 notifications, an item) and an S3 Batch
Operations invocation, for ``sam local invoke BatchFunction``; they name objects that
``seed_batch_objects`` puts in the batch bucket and (the S3 Batch Operations task's) the source bucket.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote_plus

import boto3
from urllib3.filepost import encode_multipart_formdata

from editgate.adapters.objects import ObjectStore
from editgate.app.batch.messages import ItemMessage
from editgate.domain.images import to_data_uri
from editgate_local.front import proxy_event
from editgate_local.sample import SAMPLE_IMAGE
from editgate_local.stack import BATCH_BUCKET, BATCH_QUEUE, REGION, REPO_ROOT, SOURCE_BUCKET

EVENTS = REPO_ROOT / "events"
BATCH_EVENTS_ID = "events-demo"
FieldValue = str | tuple[str, bytes, str]


# What the authorizer passes on for an accepted key: its id (the principal) and owner.
AUTHORIZED = {"principalId": "key_local", "key_id": "key_local", "owner": "local-0", "integrationLatency": 0}


def event(
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str | None = None,
    authorization: tuple[str, ...] = ("Bearer sk-local",),
    authorizer: dict[str, object] | None = AUTHORIZED,
) -> dict[str, object]:
    headers = [
        ("Host", "abc123.execute-api.us-east-1.amazonaws.com"),
        *(("Authorization", value) for value in authorization),
        ("User-Agent", "OpenAI/Python 2.8.0"),
    ]
    if content_type:
        headers.append(("Content-Type", content_type))
    return proxy_event(method, path, headers, body, authorizer=authorizer, execute_api_stage="api")


def multipart_event(
    path: str, fields: list[tuple[str, FieldValue]], authorizer: dict[str, object] | None = AUTHORIZED
) -> dict[str, object]:
    body, content_type = encode_multipart_formdata(fields, boundary="editgate-event-boundary")
    return event("POST", path, body, content_type, authorizer=authorizer)


def authorizer_event(*authorization: str) -> dict[str, object]:
    """API Gateway's REQUEST authorizer event for an edit carrying these Authorization headers."""
    edit = event("POST", "/v1/images/edits", authorization=authorization, authorizer=None)
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc123/api/POST/v1/images/edits"
    return {"type": "REQUEST", "methodArn": arn, **{k: v for k, v in edit.items() if k != "body"}}


def main() -> None:
    sample = SAMPLE_IMAGE.read_bytes()
    image = ("image", ("sample.png", sample, "image/png"))
    json_edit = {
        "images": [{"image_url": to_data_uri(sample, "image/png")}],
        "prompt": "add a moon",
        "response_format": "b64_json",
    }
    events = {
        "edit": multipart_event(
            "/v1/images/edits", [image, ("prompt", "make it a winter scene"), ("seed", "7")]
        ),
        "edit_b64_json": multipart_event(
            "/images/edits",
            [
                ("image[]", ("sample.png", sample, "application/octet-stream")),
                ("prompt", "add a rainbow"),
                ("response_format", "b64_json"),
                ("size", "512x512"),
            ],
        ),
        "edit_dry_run": multipart_event(
            "/v1/images/edits?dry_run=true", [image, ("prompt", "winter"), ("n", "6")]
        ),
        "edit_json_body": event(
            "POST", "/v1/images/edits", json.dumps(json_edit).encode(), "application/json"
        ),
        "list_models": event("GET", "/v1/models"),
        "missing_prompt": multipart_event("/v1/images/edits", [image]),
        "not_an_image": multipart_event(
            "/v1/images/edits", [("image", ("notes.txt", b"just some text", "text/plain")), ("prompt", "x")]
        ),
        "unknown_route": event("GET", "/v1/files"),
        "wrong_method": event("GET", "/v1/images/edits"),
        # The routes API Gateway lets through without its authorizer (template.yaml: Auth NONE).
        "openapi_document": event("GET", "/v1/openapi.json", authorizer=None),
        "docs_without_key": event("GET", "/docs", authorization=(), authorizer=None),
        "docs": event("GET", "/docs", authorizer=None),
        "playground": event("GET", "/playground", authorization=(), authorizer=None),
        "health": event("GET", "/v1/health", authorization=(), authorizer=None),
        "no_authorizer": multipart_event("/v1/images/edits", [image, ("prompt", "x")], authorizer=None),
    }
    write("edit_api", events)
    write(
        "authorizer",
        {
            "known_key": authorizer_event("Bearer sk-local"),
            "unknown_key": authorizer_event("Bearer sk-wrong"),
            "two_headers": authorizer_event("Bearer sk-local", "Bearer sk-local"),
        },
    )
    write("batch_edit", batch_events())


def write(function: str, events: dict[str, dict[str, object]]) -> None:
    folder = EVENTS / function
    folder.mkdir(parents=True, exist_ok=True)
    for name, payload in events.items():
        (folder / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote events/{function}/{name}.json")


def s3_put(key: str, size: int) -> dict[str, object]:
    """S3's ObjectCreated notification for one object of the batch bucket (keys URL-encoded)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": "2026-11-25T08:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "batch",
                    "bucket": {"name": BATCH_BUCKET, "arn": f"arn:aws:s3:::{BATCH_BUCKET}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": "0" * 32},
                },
            }
        ]
    }


def sqs_event(body: dict[str, object]) -> dict[str, object]:
    """One SQS record on the batch queue, as Lambda's event source hands it over."""
    text = json.dumps(body)
    return {
        "Records": [
            {
                "messageId": "4c5b2a0e-0d6c-4a1e-9d8e-2f6f2b9b1a10",
                "receiptHandle": "AQEB-local-receipt-handle",
                "body": text,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795574665000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1795574665001",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(text.encode()).hexdigest(),  # noqa: S324 - SQS's own
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{BATCH_QUEUE}",
                "awsRegion": REGION,
            }
        ]
    }


def batch_events() -> dict[str, dict[str, object]]:
    sample_size = SAMPLE_IMAGE.stat().st_size
    item = ItemMessage(
        batch_id=BATCH_EVENTS_ID,
        item_id="sample-item",
        line=0,
        image_bucket=BATCH_BUCKET,
        image_key=f"incoming/{BATCH_EVENTS_ID}/sample.png",
        params={"prompt": "add a moon"},
    )
    return {
        "sqs_manifest_put": sqs_event(s3_put(f"incoming/{BATCH_EVENTS_ID}/manifest.jsonl", 120)),
        "sqs_single_image_put": sqs_event(s3_put("incoming/single/sample.png", sample_size)),
        "sqs_s3_test_event": sqs_event(
            {
                "Service": "Amazon S3",
                "Event": "s3:TestEvent",
                "Time": "2026-11-25T08:00:00.000Z",
                "Bucket": BATCH_BUCKET,
            }
        ),
        "sqs_item": sqs_event(item.model_dump()),
        "s3_batch_operations": {
            "invocationSchemaVersion": "2.0",
            "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
            "job": {
                "id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce",
                "userArguments": {"prompt": "winter", "n": "2"},
            },
            "tasks": [
                {
                    "taskId": "dGFza2lkZ29lc2hlcmUK",
                    "s3Key": "catalog/sample.png",
                    "s3VersionId": None,
                    "s3Bucket": SOURCE_BUCKET,
                }
            ],
        },
    }


def seed_batch_objects() -> None:
    """The objects the batch events name (on the stack ``AWS_ENDPOINT_URL`` points at)."""
    store = ObjectStore(BATCH_BUCKET, "batches/", 3600)
    sample = SAMPLE_IMAGE.read_bytes()
    store.put(f"incoming/{BATCH_EVENTS_ID}/sample.png", sample, "image/png")
    ObjectStore(SOURCE_BUCKET, "", 3600).put("catalog/sample.png", sample, "image/png")
    manifest = json.dumps({"id": "sample", "image": "sample.png", "prompt": "make it a winter scene"}) + "\n"
    store.put(f"incoming/{BATCH_EVENTS_ID}/manifest.jsonl", manifest.encode(), "application/x-ndjson")
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BATCH_BUCKET,
        Key="incoming/single/sample.png",
        Body=sample,
        Metadata={"prompt": "add a rainbow"},
    )


if __name__ == "__main__":
    main()
