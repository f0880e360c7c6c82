"""Hostile and careless requests: generated and mutated multipart and JSON bodies, boundaries,
headers, field names, numbers and images, through the handler (as API Gateway invokes it) and
through the local front (as HTTP). Whatever arrives, the answer is below 500, an error is in
OpenAI's shape, and a refused request never reached fal.

Fixed seeds and bounded example counts keep the suite reproducible and under a minute."""

from __future__ import annotations

import base64
import io
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx  # the openai SDK's own HTTP client
import openai
import pytest
import requests
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

from editgate_local.events import AUTHORIZED
from editgate_local.fal_emulator import FalEmulator
from editgate_local.front import proxy_event
from editgate_local.stack import LocalStack
from tests.conftest import API_KEY

SEED = 20261125
PATH = "/v1/images/edits"
AUTH = [("Authorization", f"Bearer {API_KEY}")]


def _tiny_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


PNG = _tiny_png()


def _sdk_request() -> tuple[bytes, str]:
    """The multipart body and Content-Type the official SDK sends for an edit."""
    captured: list[httpx.Request] = []

    def capture(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, json={"created": 0, "data": []})

    client = openai.OpenAI(
        api_key=API_KEY, base_url="http://sdk.invalid/v1", max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(capture)),
    )  # fmt: skip
    client.images.edit(image=("in.png", PNG, "image/png"), prompt="make it red", n=1, size="32x32")
    request = captured[0]
    return request.read(), request.headers["content-type"]


SDK_BODY, SDK_CONTENT_TYPE = _sdk_request()


def hostile(max_examples: int) -> Callable[[Any], Any]:
    def apply(test: Any) -> Any:
        configured = settings(
            max_examples=max_examples, deadline=None, database=None, derandomize=False,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                   HealthCheck.data_too_large],
        )  # fmt: skip
        return seed(SEED)(configured(test))

    return apply


# What no request may make the gateway send to fal: a URL or file path the generators hide in
# passthrough names and values (scheme-colon forms, fullwidth colons, zero-width prefixes), and
# a misspelt key. The model's own image field is the gateway's, and is not looked at.
FORBIDDEN_IN_PAYLOADS = ("evil.example", "/etc/passwd", "base64,AAAA", "webhook_url", "callback",
                         "reference_image_urls")  # fmt: skip
MISSPELT = "promt"


def _texts(value: Any) -> Iterator[str]:
    """Every key and string inside a payload."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield str(key)
            yield from _texts(child)
    elif isinstance(value, list):
        for child in value:
            yield from _texts(child)


class Witness:
    """Checks every answer and counts what it saw, so the suite can show its own size."""

    seen = 0

    def __init__(self, emulator: FalEmulator) -> None:
        self.emulator = emulator

    def check(self, send: Callable[[], tuple[int, bytes]]) -> int:
        submits = self.emulator.calls["submit"]
        sent_before = len(self.emulator.payloads)
        status, body = send()
        Witness.seen += 1
        assert status < 500, body[:500]
        for payload in self.emulator.payloads[sent_before:]:
            assert MISSPELT not in payload, "a misspelt key reached fal"
            texts = list(_texts({k: v for k, v in payload.items() if k != "image_url"}))
            reached = [marker for marker in FORBIDDEN_IN_PAYLOADS if any(marker in text for text in texts)]
            assert reached == [], f"{reached} reached fal"
        if status >= 400:
            error = json.loads(body)["error"]
            assert set(json.loads(body)) == {"error"}
            assert set(error) == {"message", "type", "param", "code"}
            assert isinstance(error["message"], str)
            assert error["message"]
            assert isinstance(error["type"], str)
            assert error["param"] is None or isinstance(error["param"], str)
            assert error["code"] is None or isinstance(error["code"], str)
            assert "Traceback" not in error["message"]
            assert self.emulator.calls["submit"] == submits, "a refused request reached fal"
        return status


@pytest.fixture
def witness(emulator: FalEmulator) -> Witness:
    return Witness(emulator)


def via_handler(
    stack: LocalStack, headers: list[tuple[str, str]], body: bytes, authorized: bool = True
) -> Callable[[], tuple[int, bytes]]:
    def send() -> tuple[int, bytes]:
        assert stack.front is not None
        # As API Gateway invokes the function once the authorizer accepted the key.
        answer = stack.front.call(
            proxy_event("POST", PATH, headers, body, authorizer=AUTHORIZED if authorized else None)
        )
        raw = answer.get("body") or ""
        return int(answer["statusCode"]), base64.b64decode(raw) if answer.get(
            "isBase64Encoded"
        ) else raw.encode()

    return send


# --- strategies ------------------------------------------------------------------------------

mutation = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "replace", "truncate", "duplicate"]),
    st.floats(min_value=0, max_value=1, exclude_max=True),
    st.binary(min_size=1, max_size=8),
)


def mutate(body: bytes, mutations: list[tuple[str, float, bytes]]) -> bytes:
    data = bytearray(body)
    for kind, where, chunk in mutations:
        at = int(where * len(data)) if data else 0
        if kind == "flip" and data:
            data[at] ^= chunk[0] or 1
        elif kind == "insert":
            data[at:at] = chunk
        elif kind == "delete":
            del data[at : at + len(chunk)]
        elif kind == "replace":
            data[at : at + len(chunk)] = chunk
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            data[at:at] = data[at : at + 64]
    return bytes(data)


boundaries = st.one_of(
    st.just(SDK_CONTENT_TYPE),
    st.sampled_from(["multipart/form-data", "multipart/form-data; boundary=", 'multipart/form-data; boundary="',
                     "multipart/form-data; boundary=x", "multipart/form-data; boundary=" + "b" * 71,
                     "multipart/form-data;boundary=\u00e9\u00e9", "application/json", "text/plain", ""]),
    st.text(max_size=40).map(lambda b: f"multipart/form-data; boundary={b}"),
)  # fmt: skip

# Values a provider may read as a URL though they hold no "scheme://".
URL_LIKE = ["https:evil.example/x.png", "//evil.example/x", "http:\\\\evil.example\\x.png", "file:/etc/passwd",
            "https\uff1a//evil.example/x.png", "\u200bdata:image/png;base64,AAAA"]  # fmt: skip

field_names = st.one_of(
    st.sampled_from(["prompt", "image", "image[]", "mask", "n", "size", "model", "seed", "a", "a[b]", "a[]",
                     "a[b][c]", "cfg_scale", "webhook_url", "image_urls[]", "enable_safety_checker",
                     "a" + "[b]" * 1000, "x" * 200, "", "a[webhook_url]", "x[b][callback]",
                     "a[reference_image_urls][]", MISSPELT, "note", "note[src]"]),
    st.text(alphabet="ab[]_", max_size=20),
    st.text(max_size=12),
)  # fmt: skip
field_values = st.one_of(
    st.sampled_from(["1", "10", "11", "0", "-1", "9" * 5000, "1024x1024", "99999x99999", "auto", "16:9",
                     "0:0", "1e309", "nan", "true", "false", "url", "b64_json", "png", "avif",
                     "4294967295", "4294967296", "http://169.254.169.254/", "data:image/png;base64,AAAA",
                     *URL_LIKE]),
    st.text(max_size=30),
).map(str.encode) | st.binary(max_size=30)  # fmt: skip


@st.composite
def generated_multipart(draw: st.DrawFn) -> tuple[str, bytes]:
    boundary = draw(st.sampled_from([b"gen-boundary", b"x", b"----WebKitFormBoundary7MA4YWxkTrZu0gW"]))
    parts = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        name = (
            draw(field_names).encode("utf-8", "surrogatepass")
            if draw(st.booleans())
            else draw(st.binary(max_size=12))
        )
        style = draw(st.sampled_from(["text", "file", "file*", "no-disposition", "no-name", "attachment"]))
        headers = {
            "text": b'Content-Disposition: form-data; name="%s"' % name,
            "file": b'Content-Disposition: form-data; name="%s"; filename="a.png"\r\nContent-Type: image/png'
            % name,
            "file*": b"Content-Disposition: form-data; name=\"%s\"; filename*=UTF-8''%%e2%%82%%ac.png" % name,
            "no-disposition": b"Content-Type: text/plain",
            "no-name": b"Content-Disposition: form-data",
            "attachment": b'Content-Disposition: attachment; name="%s"' % name,
        }[style]
        value = PNG if style.startswith("file") and draw(st.booleans()) else draw(field_values)
        parts.append(b"--%s\r\n%s\r\n\r\n%s\r\n" % (boundary, headers, value))
    if draw(st.booleans()):  # mostly well-formed, with the prompt and image an edit needs
        parts.append(b'--%s\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nedit\r\n' % boundary)
        parts.append(
            b'--%s\r\nContent-Disposition: form-data; name="image"; filename="i.png"\r\n'
            b"Content-Type: image/png\r\n\r\n%s\r\n" % (boundary, PNG)
        )
    end = draw(st.sampled_from([b"--%s--\r\n" % boundary, b"", b"--%s" % boundary, b"--other--\r\n"]))
    content_type = "multipart/form-data; boundary=" + draw(
        st.sampled_from([boundary.decode(), boundary.decode(), "mismatched", f'"{boundary.decode()}"'])
    )
    return content_type, b"".join(parts) + end


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False),
    st.text(max_size=20), st.sampled_from(["http://10.0.0.1/a.png", "data:image/png;base64,AAAA", *URL_LIKE]),
)  # fmt: skip
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
image_item = st.one_of(
    st.just({"image_url": "data:image/png;base64," + base64.b64encode(PNG).decode()}),
    st.sampled_from([{"image_url": u} for u in ("http://example.com:99999/", "http://h:abc/", "http://[::1/",
                                                 f"http://{'a' * 64}.example.com/", "http://[::127.0.0.1]/",
                                                 "http://[64:ff9b::a9fe:a9fe]/", "http://user:pw@10.0.0.1/",
                                                 "ftp://x/", "data:image/png;base64,%%%", "data:,")]),
    st.just({"file_id": "file-1"}),
    json_value,
)  # fmt: skip


# Numbers Python reads as infinity or NaN, written as a client may write them.
NOT_FINITE = [
    b"1e999",
    b"2e308",
    b"-1e309",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b'{"x": 1e309}',
    b"[1, 1E400]",
]


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["object", "deep", "bigint", "mutated", "value", "not-finite"]))
    if kind == "not-finite":  # an edit that is good but for one number, at any depth
        name = draw(st.sampled_from([b"foo", b"seed", b"cfg_scale", b"n", b"extra"]))
        image = json.dumps(
            [{"image_url": "data:image/png;base64," + base64.b64encode(PNG).decode()}]
        ).encode()
        number = draw(st.sampled_from(NOT_FINITE))
        return b'{"prompt": "edit", "images": %s, "%s": %s}' % (image, name, number)
    if kind == "deep":
        depth = draw(st.sampled_from([10, 100, 1000, 100_000]))
        return b'{"prompt":"x","images":' + b"[" * depth + b"]" * depth + b"}"
    if kind == "bigint":
        return b'{"prompt":"x","n":' + b"9" * draw(st.sampled_from([20, 4301, 100_000])) + b"}"
    if kind == "value":
        return json.dumps(draw(json_value)).encode()
    body: dict[str, Any] = {"prompt": draw(st.sampled_from(["edit", "", "x" * 1001]) | st.text(max_size=8))}
    body["images"] = draw(st.lists(image_item, max_size=3))
    body.update(draw(st.dictionaries(st.sampled_from(["n", "size", "seed", "model", "aspect_ratio", "resolution",
                                                       "cfg_scale", "output_format", "webhook_url", "extra",
                                                       MISSPELT, "note"]),
                                     json_value, max_size=3)))  # fmt: skip
    encoded = json.dumps(body).encode()
    return mutate(encoded, draw(st.lists(mutation, max_size=2))) if kind == "mutated" else encoded


# --- through the handler ---------------------------------------------------------------------


@hostile(max_examples=700)
@given(mutations=st.lists(mutation, min_size=1, max_size=4), content_type=boundaries)
def test_given_mutated_sdk_multipart_bodies_then_every_answer_is_below_500_and_openai_shaped(
    stack: LocalStack, witness: Witness, mutations: list[tuple[str, float, bytes]], content_type: str
) -> None:
    headers = [("Content-Type", content_type), *AUTH]
    witness.check(via_handler(stack, headers, mutate(SDK_BODY, mutations)))


@hostile(max_examples=500)
@given(request=generated_multipart())
def test_given_generated_multipart_bodies_then_every_answer_is_below_500_and_openai_shaped(
    stack: LocalStack, witness: Witness, request: tuple[str, bytes]
) -> None:
    content_type, body = request
    witness.check(via_handler(stack, [("Content-Type", content_type), *AUTH], body))


@hostile(max_examples=500)
@given(body=json_bodies(), authorized=st.booleans() | st.just(True))
def test_given_generated_and_mutated_json_bodies_then_every_answer_is_below_500_and_openai_shaped(
    stack: LocalStack, witness: Witness, body: bytes, authorized: bool
) -> None:
    headers = [("Content-Type", "application/json"), *(AUTH if authorized else [])]
    witness.check(via_handler(stack, headers, body, authorized))


@hostile(max_examples=150)
@given(
    headers=st.lists(
        st.tuples(st.sampled_from(["Content-Encoding", "Content-Type", "Authorization", "Idempotency-Key",
                                   "X-Anything"]),
                  st.sampled_from(["gzip", "br", "identity", "", "Bearer", "Bearer sk-local sk-local", "\u00ff"])
                  | st.text(max_size=20)),
        max_size=3,
    )
)  # fmt: skip
def test_given_odd_headers_then_every_answer_is_below_500_and_openai_shaped(
    stack: LocalStack, witness: Witness, headers: list[tuple[str, str]]
) -> None:
    witness.check(via_handler(stack, [("Content-Type", SDK_CONTENT_TYPE), *AUTH, *headers], SDK_BODY))


# --- through the local front (HTTP) ----------------------------------------------------------


def raw_http(stack: LocalStack, head: bytes, body: bytes) -> Callable[[], tuple[int, bytes]]:
    """Bytes on a socket, for what no HTTP client will send: cut bodies and bad chunk framing."""

    def send() -> tuple[int, bytes]:
        url = urlsplit(stack.base_url)
        with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
            conn.sendall(head + body)
            conn.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        status_line, _, rest = answer.partition(b"\r\n")
        return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]

    return send


def _sendable(value: str) -> bool:
    """What an HTTP client can put in a header at all."""
    return value.isprintable() and all(ord(c) < 256 for c in value)


@hostile(max_examples=150)
@given(mutations=st.lists(mutation, min_size=1, max_size=3), content_type=boundaries.filter(_sendable))
def test_given_mutated_bodies_over_http_then_every_answer_is_below_500_and_openai_shaped(
    stack: LocalStack, witness: Witness, mutations: list[tuple[str, float, bytes]], content_type: str
) -> None:
    body = mutate(SDK_BODY, mutations)

    def send() -> tuple[int, bytes]:
        response = requests.post(
            f"{stack.base_url}{PATH}", data=body, timeout=30,
            headers={"Content-Type": content_type, "Authorization": f"Bearer {API_KEY}"},
        )  # fmt: skip
        return response.status_code, response.content

    witness.check(send)


@hostile(max_examples=60)
@given(
    framing=st.sampled_from(["short", "bad-length", "negative", "bad-chunk", "short-chunk", "gzip"]),
    cut=st.integers(min_value=0, max_value=len(SDK_BODY) - 1),
)
def test_given_cut_or_badly_framed_bodies_over_http_then_the_answer_is_a_400_in_openai_shape(
    stack: LocalStack, witness: Witness, framing: str, cut: int
) -> None:
    common = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nConnection: close\r\n"
    common += f"Content-Type: {SDK_CONTENT_TYPE}\r\n"
    length = {"short": str(len(SDK_BODY)), "bad-length": "12abc", "negative": "-5"}
    if framing in length:
        head, body = f"{common}Content-Length: {length[framing]}\r\n\r\n", SDK_BODY[:cut]
    elif framing == "gzip":
        head, body = f"{common}Content-Encoding: gzip\r\nContent-Length: {cut}\r\n\r\n", SDK_BODY[:cut]
    else:
        size = "zz" if framing == "bad-chunk" else f"{len(SDK_BODY):x}"
        head, body = f"{common}Transfer-Encoding: chunked\r\n\r\n{size}\r\n", SDK_BODY[:cut]
    assert witness.check(raw_http(stack, head.encode(), body)) == 400


@st.composite
def passthrough_fields(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """One passthrough field of an otherwise good edit, named or valued as an attacker or a
    careless client would: a URL-like value at some depth, a URL-naming key nested, a typo."""
    name = draw(st.sampled_from(["note", "note[src]", "note[a][b]", "note[]", "a[webhook_url]", "x[b][callback]",
                                 "a[reference_image_urls][]", "a[Webhook_URL]", MISSPELT]))  # fmt: skip
    value = draw(st.sampled_from(URL_LIKE) | st.sampled_from(["x", "1e999", "no text: blurry"]))
    return name.encode(), value.encode()


@hostile(max_examples=150)
@given(field=passthrough_fields())
def test_given_good_edits_with_one_hostile_passthrough_field_then_no_url_or_typo_reaches_fal(
    stack: LocalStack, witness: Witness, field: tuple[bytes, bytes]
) -> None:
    name, value = field
    body = _form(PROMPT_PART, IMAGE_PART, (b'name="%s"' % name, value))
    witness.check(via_handler(stack, [("Content-Type", FORM), *AUTH], body))


def test_the_suite_sent_at_least_2000_requests() -> None:
    # Runs after the property tests above (pytest keeps file order); alone, it has nothing to count.
    if Witness.seen == 0:
        pytest.skip("run with the rest of this file")
    assert Witness.seen >= 2000


def _form(*parts: tuple[bytes, bytes], boundary: bytes = b"b0undary") -> bytes:
    """A multipart body of (Content-Disposition parameters, value) parts."""
    encoded = [
        b"--%s\r\nContent-Disposition: form-data; %s\r\n\r\n%s\r\n" % (boundary, d, v) for d, v in parts
    ]
    return b"".join(encoded) + b"--%s--\r\n" % boundary


IMAGE_PART = (b'name="image"; filename="i.png"', PNG)
PROMPT_PART = (b'name="prompt"', b"edit")
FORM = "multipart/form-data; boundary=b0undary"


@pytest.mark.parametrize(
    ("content_type", "body", "param"),
    [
        ("multipart/form-data", _form(PROMPT_PART, IMAGE_PART), None),
        ("multipart/form-data; boundary=", _form(PROMPT_PART, IMAGE_PART), None),
        ("multipart/form-data; boundary=other", _form(PROMPT_PART, IMAGE_PART), None),
        (FORM, _form(PROMPT_PART, IMAGE_PART, (b'name="\xff\xfe"', b"1")), None),
        (FORM, _form((b'name="prompt"', b"\xff\xfe edit"), IMAGE_PART), "prompt"),
        (FORM, _form(PROMPT_PART, IMAGE_PART, (b'name="a"', b"1"), (b'name="a[b]"', b"2")), "a"),
        (FORM, _form(PROMPT_PART, IMAGE_PART, (b'name="a' + b"[b]" * 1000 + b'"', b"1")), None),
        (FORM, _form(PROMPT_PART, IMAGE_PART, (b'name="size"', b"9" * 100_000)), "size"),
        (FORM, _form(PROMPT_PART, IMAGE_PART)[:-20], None),
        ("application/json", b'{"prompt":"x","images":' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
        ("application/json", b'{"prompt":"x","images":[],"n":' + b"9" * 4301 + b"}", None),
        *[("application/json", json.dumps({"prompt": "x", "images": [{"image_url": url}]}).encode(), "images")
          for url in ("http://example.com:99999/", "http://h:abc/", "http://[::1/",
                      f"http://{'a' * 64}.example.com/", "http://[::127.0.0.1]/", "http://[64:ff9b::a9fe:a9fe]/")],
    ],
)  # fmt: skip
def test_given_each_request_that_answered_500_before_then_it_is_a_400_naming_what_is_wrong(
    stack: LocalStack, witness: Witness, content_type: str, body: bytes, param: str | None
) -> None:
    captured: dict[str, Any] = {}

    def send() -> tuple[int, bytes]:
        status, answer = via_handler(stack, [("Content-Type", content_type), *AUTH], body)()
        captured.update(json.loads(answer))
        return status, answer

    assert witness.check(send) == 400
    assert captured["error"]["param"] == param


def test_given_an_image_part_named_with_filename_star_then_it_is_a_file_and_the_edit_is_made(
    stack: LocalStack, witness: Witness
) -> None:
    image = (b"name=\"image\"; filename*=UTF-8''%e2%82%ac.png", PNG)
    assert (
        witness.check(via_handler(stack, [("Content-Type", FORM), *AUTH], _form(PROMPT_PART, image))) == 200
    )
