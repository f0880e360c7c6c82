"""Writes the ready-made Lambda events in events/: ``python -m editgate_local.events``.

Each is the API Gateway REST proxy event the front (and real API Gateway) makes for a request,
for ``sam local invoke EditApiFunction -e events/edit_api/<name>.json`` and the events tests.
"""

from __future__ import annotations

import json

from urllib3.filepost import encode_multipart_formdata

from editgate_local.cli import SAMPLE_IMAGE
from editgate_local.front import proxy_event
from editgate_local.stack import REPO_ROOT

EVENTS = REPO_ROOT / "events" / "edit_api"
FieldValue = str | tuple[str, bytes, str]


def multipart_event(
    path: str, fields: list[tuple[str, FieldValue]], api_key: str = "sk-local"
) -> dict[str, object]:
    body, content_type = encode_multipart_formdata(fields, boundary="editgate-event-boundary")
    headers = [
        ("Host", "abc123.execute-api.us-east-1.amazonaws.com"),
        ("Authorization", f"Bearer {api_key}"),
        ("Content-Type", content_type),
        ("User-Agent", "OpenAI/Python 2.8.0"),
    ]
    return proxy_event("POST", path, headers, body)


def main() -> None:
    sample = SAMPLE_IMAGE.read_bytes()
    image = ("image", ("sample.png", sample, "image/png"))
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
        "missing_prompt": multipart_event("/v1/images/edits", [image]),
        "not_an_image": multipart_event(
            "/v1/images/edits", [("image", ("notes.txt", b"just some text", "text/plain")), ("prompt", "x")]
        ),
        "wrong_api_key": multipart_event("/v1/images/edits", [image, ("prompt", "x")], api_key="sk-wrong"),
    }
    EVENTS.mkdir(parents=True, exist_ok=True)
    for name, event in events.items():
        (EVENTS / f"{name}.json").write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote events/edit_api/{name}.json")


if __name__ == "__main__":
    main()
