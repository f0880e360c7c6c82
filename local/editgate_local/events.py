"""Writes the ready-made Lambda events in events/: ``python -m editgate_local.events``.

Each is the API Gateway REST proxy event the front (and real API Gateway) makes for a request,
for ``sam local invoke EditApiFunction -e events/edit_api/<name>.json`` and the events tests.
"""

from __future__ import annotations

import json

from urllib3.filepost import encode_multipart_formdata

from editgate.images import to_data_uri
from editgate_local.cli import SAMPLE_IMAGE
from editgate_local.front import proxy_event
from editgate_local.stack import REPO_ROOT

EVENTS = REPO_ROOT / "events" / "edit_api"
FieldValue = str | tuple[str, bytes, str]


def event(
    method: str, path: str, body: bytes = b"", content_type: str | None = None, api_key: str = "sk-local"
) -> dict[str, object]:
    headers = [
        ("Host", "abc123.execute-api.us-east-1.amazonaws.com"),
        ("Authorization", f"Bearer {api_key}"),
        ("User-Agent", "OpenAI/Python 2.8.0"),
    ]
    if content_type:
        headers.append(("Content-Type", content_type))
    return proxy_event(method, path, headers, body)


def multipart_event(
    path: str, fields: list[tuple[str, FieldValue]], api_key: str = "sk-local"
) -> dict[str, object]:
    body, content_type = encode_multipart_formdata(fields, boundary="editgate-event-boundary")
    return event("POST", path, body, content_type, api_key)


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
        "wrong_api_key": multipart_event("/v1/images/edits", [image, ("prompt", "x")], api_key="sk-wrong"),
    }
    EVENTS.mkdir(parents=True, exist_ok=True)
    for name, payload in events.items():
        (EVENTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote events/edit_api/{name}.json")


if __name__ == "__main__":
    main()
