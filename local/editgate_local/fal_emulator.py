"""A fal queue emulator: submit / status (polled, or followed as a stream of server-sent events) /
result / cancel with fal's URLs, auth, 422 validation, latency, and faults scripted per call or at
random. It makes a deterministic, visibly edited image with Pillow, and records the headers of
every submit.

Faults are injected with ``FalEmulator.inject(Fault(...))`` or over HTTP:
``POST /_emulator/faults`` with a list of faults, ``POST /_emulator/random`` with
``{"rate": 0.2, "seed": 1}``, ``POST /_emulator/reset``; its latency with ``POST /_emulator/latency``
and ``{"seconds": 1.0}``.

A submit with ``?fal_webhook=<url>`` is also told by a signed webhook when it ends (see
``editgate_local.fal_webhooks``); the emulator's JWKS is at ``/.well-known/jwks.json``
(``FalEmulator.jwks_url``, its reads counted in ``calls["jwks"]``). Webhook faults: scripted
(``Fault("webhook", kind="drop"|"duplicate"|"slow"|"corrupt")``) or at random rates
(``FalEmulator.webhook_faults``, or ``POST /_emulator/webhooks`` with ``{"drop": 0.2,
"duplicate": 0.1, "delay": 0, "corrupt": 0, "delay_seconds": 1, "seed": 1}``)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import random
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import requests
from PIL import Image, ImageDraw, ImageFont, ImageOps
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from editgate_local.background_server import BackgroundServer
from editgate_local.fal_webhooks import (
    WEBHOOK_FAULTS,
    WebhookFaults,
    WebhookSender,
    WebhookSigner,
    webhook_body,
)


class _Input(BaseModel):
    # fal's endpoints are pydantic models: unknown fields are ignored, values coerced leniently.
    model_config = ConfigDict(extra="ignore")

    prompt: str
    seed: int | None = Field(default=None, ge=0)
    num_images: int = Field(default=1, ge=1, le=4)
    num_inference_steps: int = Field(default=50, ge=1, le=50)
    guidance_scale: float = Field(default=3.5, ge=0, le=20)
    enable_safety_checker: bool = True
    sync_mode: bool = False

    @property
    def image(self) -> tuple[str, str]:
        """The input image's field and URL."""
        raise NotImplementedError


class HidreamE1Input(_Input):
    """fal-ai/hidream-e1-1 and fal-ai/hidream-e1-full: the output follows the input's size."""

    image_url: str
    target_image_description: str | None = None
    negative_prompt: str = "low resolution, blur"
    image_guidance_scale: float = Field(default=2.0, ge=0, le=20)
    output_format: Literal["jpeg", "png"] = "jpeg"

    @property
    def image(self) -> tuple[str, str]:
        return "image_url", self.image_url


class ImageSize(BaseModel):
    width: int = Field(ge=16, le=4096)
    height: int = Field(ge=16, le=4096)


_PRESETS = {
    "square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024), "landscape_4_3": (1024, 768), "landscape_16_9": (1024, 576),
}  # fmt: skip


class HidreamO1EditInput(_Input):
    """fal-ai/hidream-o1-image/edit: reference images and a native output size up to ~2048²."""

    reference_image_urls: list[str] = Field(min_length=1)
    image_size: (
        ImageSize
        | Literal["square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"]
    ) = ImageSize(width=2048, height=2048)
    keep_original_aspect: bool = True
    output_format: Literal["jpeg", "png", "webp"] = "png"

    @property
    def image(self) -> tuple[str, str]:
        return "reference_image_urls", self.reference_image_urls[0]


SCHEMAS: dict[str, type[_Input]] = {
    "fal-ai/hidream-e1-1": HidreamE1Input,
    "fal-ai/hidream-e1-full": HidreamE1Input,
    "fal-ai/hidream-o1-image/edit": HidreamO1EditInput,
}
WORKING_AREA = 1024 * 1024


FaultKind = Literal["status", "drop", "malformed", "slow", "nsfw", "failed", "duplicate", "corrupt"]


@dataclass
class Fault:
    """What the next ``times`` calls of ``stage`` (submit, status, stream, result, cancel, file,
    run) get; ``stream`` is the status stream (``GET {status_url}/stream``).

    ``status``: answer ``status_code`` with ``body``, from fal's ingress (no ``x-fal-request-id``)
    unless ``from_runner``. ``drop``: close the connection without an answer; a stream breaks
    mid-way instead (its events, then the connection closed where COMPLETED would come).
    ``malformed``: a 200 whose body is not JSON (for a stream: not an event stream). ``slow``: wait
    ``delay`` seconds, then answer normally. ``nsfw`` (result): the images come back black and
    flagged in ``has_nsfw_concepts``. ``failed`` (submit): the request ends ``COMPLETED`` with an
    error, and its result is a runner's 500. ``webhook``: ``drop``, ``duplicate``, ``slow``
    (``delay``) or ``corrupt`` the next webhook deliveries (``editgate_local.fal_webhooks``).
    """

    stage: str
    kind: FaultKind = "status"
    status_code: int = 500
    times: int = 1
    body: dict[str, Any] = field(default_factory=lambda: {"detail": "Injected fault"})
    headers: dict[str, str] = field(default_factory=dict)
    from_runner: bool = False
    delay: float = 0.0


# What a random transient fault may be at each stage: only what fal's clients retry, and no
# dropped connection on submit (whether that submit reached fal is unknowable, so it is not sent again).
_TRANSIENT: dict[str, tuple[Fault, ...]] = {
    "submit": (
        Fault("submit", status_code=502),
        Fault("submit", status_code=503),
        Fault("submit", status_code=429),
    ),
    "status": (
        Fault("status", status_code=503),
        Fault("status", status_code=500),
        Fault("status", kind="drop"),
    ),
    "stream": (Fault("stream", status_code=503), Fault("stream", kind="drop")),
    "result": (
        Fault("result", status_code=502),
        Fault("result", status_code=504),
        Fault("result", kind="drop"),
    ),
    "file": (Fault("file", status_code=503), Fault("file", kind="drop")),
}


@dataclass
class _Job:
    endpoint: str
    payload: dict[str, Any]
    submitted: float
    cancelled: bool = False
    failed: bool = False
    nsfw: bool = False
    output: tuple[int, dict[str, Any]] | None = None
    # Set when the model's work (made at submit, in the background) is done.
    ready: threading.Event = field(default_factory=threading.Event)
    # Set by a cancel: its status turns COMPLETED before its latency has passed.
    cancelling: threading.Event = field(default_factory=threading.Event)
    webhook_url: str | None = None  # the submit's ?fal_webhook=


# fal writes a comment on a live status stream every 15 s, so that nothing on the way closes it.
KEEP_ALIVE_SECONDS = 15.0
# How often a waiting status stream looks again at the emulator's latency, which may change.
_RECHECK_SECONDS = 1.0


class FalEmulator:
    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, key: str | None = None, latency: float = 0.0
    ):
        self.key = key or f"emulator-{secrets.token_hex(8)}"
        self.latency = latency
        self.calls: Counter[str] = Counter()
        self.payloads: list[dict[str, Any]] = []
        self.submit_headers: list[dict[str, str]] = []  # of every submit, faulted ones too (lower-case names)
        self.request_ids: list[str] = []  # accepted submits since the last reset, in order
        self._faults: list[Fault] = []
        self._random_rate = 0.0
        self._random = random.Random(0)
        self._jobs: dict[str, _Job] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        self.webhooks = WebhookSender(WebhookSigner())
        self._server = BackgroundServer(_handler_for(self), host=host, port=port, name="fal-emulator")

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def start(self) -> FalEmulator:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def random_faults(self, rate: float, seed: int = 0) -> None:
        """Give each call a ``rate`` chance of a transient fault that fal's clients would retry."""
        with self._lock:
            self._random_rate = rate
            self._random = random.Random(seed)

    def webhook_faults(self, *, seed: int = 0, **rates: float) -> None:
        """Each webhook delivery's chances of a fault: ``drop``, ``duplicate``, ``delay``,
        ``corrupt`` (and ``delay_seconds``): see ``WebhookFaults``."""
        self.webhooks.faults = WebhookFaults(seed=seed, **rates)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.payloads.clear()
            self.submit_headers.clear()
            self.request_ids.clear()
            self._faults.clear()
            self._random_rate = 0.0
        self.webhooks.faults = WebhookFaults()
        self.webhooks.deliveries.clear()

    def billed(self) -> set[str]:
        """The accepted requests (since the last reset) that fal would bill: run to the end, not
        failed and not cancelled."""
        now = time.monotonic()
        with self._lock:
            jobs = {request_id: self._jobs[request_id] for request_id in self.request_ids}
        return {
            request_id
            for request_id, job in jobs.items()
            if not job.cancelled and not job.failed and now - job.submitted >= self.latency
        }

    # --- the protocol, called by the HTTP handler ----------------------------------------------

    def note_submit(self, headers: dict[str, str]) -> None:
        with self._lock:
            self.submit_headers.append({name.lower(): value for name, value in headers.items()})

    def take_fault(self, stage: str) -> Fault | None:
        with self._lock:
            self.calls[stage] += 1
            for fault in self._faults:
                if fault.stage == stage and fault.times > 0:
                    fault.times -= 1
                    return fault
            if stage in _TRANSIENT and self._random.random() < self._random_rate:
                return self._random.choice(_TRANSIENT[stage])
        return None

    def submit(
        self,
        endpoint: str,
        payload: dict[str, Any],
        base: str,
        fault: Fault | None,
        webhook_url: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        if endpoint not in SCHEMAS:
            return 404, {"detail": f"Application '{endpoint}' not found"}
        request_id = str(uuid.uuid4())
        job = _Job(endpoint, payload, time.monotonic(), failed=fault is not None and fault.kind == "failed",
                   webhook_url=webhook_url)  # fmt: skip
        with self._lock:
            self._jobs[request_id] = job
            self.payloads.append(payload)
            self.request_ids.append(request_id)
        # fal's URLs name the app (owner/name) without the endpoint's sub-path.
        app_path = "/".join(endpoint.split("/")[:2])
        root = f"{base}/{app_path}/requests/{request_id}"
        return 200, {
            "status": "IN_QUEUE",
            "request_id": request_id,
            "response_url": root,
            "status_url": f"{root}/status",
            "cancel_url": f"{root}/cancel",
            "queue_position": 0,
        }

    def run(self, endpoint: str, payload: dict[str, Any], base: str) -> tuple[int, dict[str, Any]]:
        """fal's synchronous route (``POST https://fal.run/{endpoint}``, here ``{url}/run/...``):
        the result itself, once the latency has passed. It also takes the shape LiteLLM's fal
        image-edit adapter sends (the endpoint id with ``/edit`` appended, ``image_urls``), so the
        benchmarks can run LiteLLM against it."""
        if endpoint not in SCHEMAS and endpoint.removesuffix("/edit") in SCHEMAS:
            endpoint = endpoint.removesuffix("/edit")
        image_urls = payload.get("image_urls")
        if isinstance(image_urls, list) and image_urls and SCHEMAS.get(endpoint) is HidreamE1Input:
            payload = {**payload, "image_url": image_urls[0]}
        status, submitted = self.submit(endpoint, payload, base, None)
        if status != 200:
            return status, submitted
        self.start_work(submitted["request_id"], base)
        job = self._jobs[submitted["request_id"]]
        time.sleep(max(0.0, self.latency - (time.monotonic() - job.submitted)))  # the model's run time
        return self.result(submitted["request_id"], base, None)

    def status(self, request_id: str) -> tuple[int, dict[str, Any]]:
        job = self._jobs.get(request_id)
        if job is None:
            return 404, {"detail": "Request not found"}
        elapsed = time.monotonic() - job.submitted
        if job.cancelled or elapsed >= self.latency:
            done: dict[str, Any] = {"status": "COMPLETED", "request_id": request_id, "logs": None}
            if job.failed:
                done.update(error="Internal error while running the model", error_type="runner_error")
            return 200, done
        if elapsed < self.latency / 2:
            return 202, {"status": "IN_QUEUE", "request_id": request_id, "queue_position": 0}
        return 202, {"status": "IN_PROGRESS", "request_id": request_id, "logs": []}

    def wait_for_change(self, request_id: str, longest: float) -> None:
        """Until the request's status may change (half its latency: IN_PROGRESS; all of it:
        COMPLETED; or a cancel), ``longest`` seconds at most."""
        job = self._jobs[request_id]
        elapsed = time.monotonic() - job.submitted
        change = next((at - elapsed for at in (self.latency / 2, self.latency) if at > elapsed), 0.0)
        job.cancelling.wait(max(0.0, min(longest, change, _RECHECK_SECONDS)))

    def result(self, request_id: str, base: str, fault: Fault | None) -> tuple[int, dict[str, Any]]:
        job = self._jobs.get(request_id)
        if job is None:
            return 404, {"detail": "Request not found"}
        if job.cancelled:
            return 400, {"detail": "Request was cancelled"}
        if time.monotonic() - job.submitted < self.latency:
            return 400, {"detail": "Request is still in progress"}
        if job.failed:
            return 500, {"detail": "Internal error while running the model", "error_type": "runner_error"}
        job.ready.wait()
        if fault is not None and fault.kind == "nsfw" and not job.nsfw:
            job.nsfw = True
            job.output = self._run(job, base)
        assert job.output is not None
        return job.output

    def cancel(self, request_id: str) -> tuple[int, dict[str, Any]]:
        job = self._jobs.get(request_id)
        if job is None:
            return 404, {"detail": "Request not found"}
        if time.monotonic() - job.submitted >= self.latency:
            return 400, {"status": "ALREADY_COMPLETED"}
        job.cancelled = True
        job.cancelling.set()
        return 202, {"status": "CANCELLATION_REQUESTED"}

    def file(self, name: str) -> tuple[bytes, str] | None:
        return self._files.get(name)

    def start_work(self, request_id: str, base: str) -> None:
        """Run an accepted request's model. Called once the submit is answered (fal answers at
        once): as on fal, the model works during the request's latency, jobs side by side, and
        the images are made now, on a thread of their own, not when the result is asked for."""
        job = self._jobs[request_id]
        threading.Thread(target=self._work, args=(job, base), daemon=True).start()
        if job.webhook_url:
            threading.Thread(target=self._notify, args=(request_id, base), daemon=True).start()

    def _notify(self, request_id: str, base: str) -> None:
        """fal's webhook once the request has ended (its latency passed, or cancelled)."""
        job = self._jobs[request_id]
        job.ready.wait()
        job.cancelling.wait(max(0.0, self.latency - (time.monotonic() - job.submitted)))
        status_code, result = self.result(request_id, base, None)
        fault = self.take_fault("webhook")
        assert job.webhook_url is not None
        body = webhook_body(request_id, status_code, result)
        if fault is None or fault.kind not in WEBHOOK_FAULTS:
            return self.webhooks.send(job.webhook_url, request_id, body)
        return self.webhooks.send(job.webhook_url, request_id, body, WEBHOOK_FAULTS[fault.kind], fault.delay)

    def _work(self, job: _Job, base: str) -> None:
        try:
            job.output = self._run(job, base)
        except Exception as exc:  # an emulator bug: answered as fal answers a crashed runner
            job.output = 500, {"detail": f"Internal error while running the model: {exc}"}
        finally:
            job.ready.set()

    def _run(self, job: _Job, base: str) -> tuple[int, dict[str, Any]]:
        try:
            params = SCHEMAS[job.endpoint].model_validate(job.payload)
        except ValidationError as exc:
            detail = [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors(include_url=False)]
            return 422, {"detail": json.loads(json.dumps(detail, default=str))}
        field, url = params.image
        try:
            source = load_image(url)
        except (ValueError, OSError, requests.RequestException) as exc:
            return 422, {
                "detail": [_error(("body", field), f"Could not load the image: {exc}", "image_load_error")]
            }
        seed = params.seed if params.seed is not None else random.randint(0, 2**31)
        size = output_size(params, source.size)
        fmt = str(getattr(params, "output_format", "jpeg"))
        images = []
        for index in range(params.num_images):
            data = (
                blacked_out(size, fmt) if job.nsfw else edited(source, params.prompt, seed + index, fmt, size)
            )
            if params.sync_mode:
                url = f"data:image/{fmt};base64,{base64.b64encode(data).decode()}"
            else:
                name = f"{uuid.uuid4().hex}.{fmt}"
                self._files[name] = (data, f"image/{fmt}")
                url = f"{base}/files/{name}"
            images.append({
                "url": url, "content_type": f"image/{fmt}", "file_name": f"{index}.{fmt}",
                "file_size": len(data), "width": size[0], "height": size[1],
            })  # fmt: skip
        return 200, {
            "images": images,
            "timings": {"inference": round(self.latency, 3)},
            "seed": seed,
            "has_nsfw_concepts": [job.nsfw] * len(images),
            "prompt": params.prompt,
        }


def output_size(params: _Input, input_size: tuple[int, int]) -> tuple[int, int]:
    """HiDream E1 answers at the input's size; O1 at its image_size, snapped to multiples of 16
    within about 2048² pixels."""
    if not isinstance(params, HidreamO1EditInput):
        return input_size
    size = params.image_size
    width, height = _PRESETS[size] if isinstance(size, str) else (size.width, size.height)
    scale = min(1.0, math.sqrt(2048 * 2048 / (width * height)))
    return max(16, int(width * scale) // 16 * 16), max(16, int(height * scale) // 16 * 16)


def _error(loc: tuple[str, ...], msg: str, kind: str, value: Any = None) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind, "input": value}


def blacked_out(size: tuple[int, int], fmt: str) -> bytes:
    """What fal's safety checker returns in place of a flagged image."""
    out = io.BytesIO()
    Image.new("RGB", size).save(out, format=fmt.upper())
    return out.getvalue()


def load_image(url: str) -> Image.Image:
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        data = base64.b64decode(payload) if header.endswith(";base64") else payload.encode()
    elif url.startswith(("http://", "https://")):
        response = requests.get(url, timeout=10)
        response.raise_for_status()
        data = response.content
    else:
        raise ValueError("image_url must be an http(s) URL or a data: URI")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def edited(source: Image.Image, prompt: str, seed: int, fmt: str, size: tuple[int, int]) -> bytes:
    """What HiDream E1.1 does to sizes (work at ≤1 MP, sides multiples of 16, answer at the
    input's size, or at ``size``), with a deterministic, visible edit: a tint and a banner from
    prompt and seed."""
    ratio = source.width / source.height
    area = min(source.width * source.height, WORKING_AREA)
    work = (
        max(16, math.floor(math.sqrt(area * ratio) / 16) * 16),
        max(16, math.floor(math.sqrt(area / ratio) / 16) * 16),
    )
    image = ImageOps.fit(source, work, Image.Resampling.LANCZOS)
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    tint = (digest[0], digest[1], digest[2])
    image = Image.blend(image, ImageOps.colorize(ImageOps.grayscale(image), (0, 0, 0), tint), 0.55)
    draw = ImageDraw.Draw(image)
    band = max(24, image.height // 8)
    draw.rectangle((0, image.height - band, image.width, image.height), fill=(0, 0, 0))
    font = ImageFont.load_default(size=max(12, band // 2))
    draw.text(
        (band // 4, image.height - band + band // 4), f"{prompt[:60]} · seed {seed}", fill=tint, font=font
    )
    image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # PNG's quickest level: the emulator's own CPU is not what fal spends, and at level 6 it would
    # dominate (and add noise to) every latency measured against it.
    image.save(out, format=fmt.upper(), **({"compress_level": 1} if fmt == "png" else {}))
    return out.getvalue()


def _handler_for(emulator: FalEmulator) -> type[BaseHTTPRequestHandler]:
    return type("FalEmulatorHandler", (_EmulatorHandler,), {"emulator": emulator})


class _EmulatorHandler(BaseHTTPRequestHandler):
    """fal's queue protocol over HTTP, for the ``emulator`` of its server (set by ``_handler_for``)."""

    emulator: FalEmulator
    protocol_version = "HTTP/1.1"
    # http.server writes headers and body apart: with Nagle's algorithm and delayed ACKs, every
    # request on a reused connection would wait ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        base = f"http://{self.headers.get('host')}"
        if (method, parts[:1]) in (("POST", ["_emulator"]), ("GET", [".well-known"])):
            return self._outside_queue(parts, body)
        is_file = method == "GET" and parts[:1] == ["files"] and len(parts) == 2
        stage = "file" if is_file else _stage(method, parts)
        if stage is None:
            return self._json(404, {"detail": "Not Found"})
        if stage == _NOT_ALLOWED:
            return self._json(405, {"detail": "Method Not Allowed"})
        if stage == "submit":
            self.emulator.note_submit(dict(self.headers.items()))
        fault = self.emulator.take_fault(stage)
        if fault is not None and self._played(fault, stage):
            return None
        if stage == "file":
            found = self.emulator.file(parts[1])
            return self._send(200, *found, {}) if found else self._json(404, {"detail": "Not Found"})
        if self.headers.get("authorization") != f"Key {self.emulator.key}":
            return self._json(401, {"detail": "No user found for Key ID and Secret"})
        if stage in ("submit", "run"):
            return self._accept(stage, parts, body, base, fault)
        return self._about_request(stage, parts[3], base, fault)

    def _outside_queue(self, parts: list[str], body: bytes) -> None:
        """The emulator's control routes, and the JWKS of its webhook signing key (no auth, as fal's)."""
        if parts[0] == "_emulator":
            return self._control(parts[1:], body)
        if parts != [".well-known", "jwks.json"]:
            return self._json(404, {"detail": "Not Found"})
        fault = self.emulator.take_fault("jwks")
        if fault is not None and self._played(fault, "jwks"):
            return None
        return self._json(200, self.emulator.webhooks.signer.jwks())

    def _about_request(self, stage: str, request_id: str, base: str, fault: Fault | None) -> None:
        """A call about an accepted request: its status (polled or streamed), cancel, or result."""
        if stage == "status":
            return self._json(*self.emulator.status(request_id))
        if stage == "stream":
            return self._stream_status(request_id, fault)
        if stage == "cancel":
            return self._json(*self.emulator.cancel(request_id))
        return self._json(*self.emulator.result(request_id, base, fault))

    def _played(self, fault: Fault, stage: str) -> bool:
        """Plays a fault of the transport; True when it is the whole answer (a slow one only
        delays the real answer; a failed or flagged job, or a stream broken mid-way, is the
        emulator's to play)."""
        if fault.kind == "slow":
            time.sleep(fault.delay)
        elif fault.kind == "drop" and stage != "stream":
            self.close_connection = True
            return True
        elif fault.kind == "malformed":
            self._send(200, b"{not json", "application/json", {"x-fal-request-id": "malformed"})
            return True
        elif fault.kind == "status":
            runner = {"x-fal-request-id": str(uuid.uuid4())} if fault.from_runner else {}
            self._json(fault.status_code, fault.body, {**fault.headers, **runner})
            return True
        return False

    def _stream_status(self, request_id: str, fault: Fault | None) -> None:
        """fal's status stream: a ``data:`` event (the status object) each time the request's
        status changes, COMPLETED last, then the end; a comment every 15 s while nothing changes.
        A ``drop`` fault breaks the connection where COMPLETED would come."""
        status_code, status = self.emulator.status(request_id)
        if status_code == 404:
            return self._json(status_code, status)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        sent, quiet_since = None, time.monotonic()
        try:
            while True:
                _, status = self.emulator.status(request_id)
                completed = status["status"] == "COMPLETED"
                if completed and fault is not None and fault.kind == "drop":
                    self.close_connection = True  # no COMPLETED, no end of the stream: broken
                    return None
                if status["status"] != sent:
                    self._chunk(f"data: {json.dumps(status)}\n\n".encode(), last=completed)
                    sent, quiet_since = status["status"], time.monotonic()
                if completed:
                    return None
                if time.monotonic() - quiet_since >= KEEP_ALIVE_SECONDS:
                    self._chunk(b": keep-alive\n\n")
                    quiet_since = time.monotonic()
                longest = KEEP_ALIVE_SECONDS - (time.monotonic() - quiet_since)
                self.emulator.wait_for_change(request_id, longest)
        except OSError:  # the client went away
            self.close_connection = True
        return None

    def _chunk(self, data: bytes, *, last: bool = False) -> None:
        """One chunk of a chunked body; ``last`` ends the body too."""
        self.wfile.write(b"%x\r\n%s\r\n%s" % (len(data), data, b"0\r\n\r\n" if last else b""))

    def _accept(self, stage: str, parts: list[str], body: bytes, base: str, fault: Fault | None) -> None:
        """A submit to the queue, or fal.run's synchronous call."""
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return self._json(422, {"detail": [_error(("body",), "Invalid JSON", "json_invalid")]})
        if stage == "run":
            return self._json(*self.emulator.run("/".join(parts[1:]), payload, base))
        webhook = parse_qs(urlsplit(self.path).query).get("fal_webhook", [None])[-1]
        status, submitted = self.emulator.submit("/".join(parts), payload, base, fault, webhook)
        self._json(status, submitted)
        if status == 200:  # fal answers the submit first, then works on it
            self.emulator.start_work(submitted["request_id"], base)
        return None

    def _control(self, command: list[str], body: bytes) -> None:
        data = json.loads(body or b"{}")
        if command == ["faults"]:
            self.emulator.inject(*(Fault(**item) for item in data))
        elif command == ["random"]:
            self.emulator.random_faults(float(data["rate"]), int(data.get("seed", 0)))
        elif command == ["reset"]:
            self.emulator.reset()
        elif command == ["latency"]:
            self.emulator.latency = float(data["seconds"])
        elif command == ["webhooks"]:
            rates = {name: float(value) for name, value in data.items() if name != "seed"}
            self.emulator.webhook_faults(seed=int(data.get("seed", 0)), **rates)
        else:
            return self._json(404, {"detail": "Unknown control command"})
        return self._json(200, {"ok": True})

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers or {})

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


_NOT_ALLOWED = "method not allowed"


def _stage(method: str, parts: list[str]) -> str | None:
    """Which protocol call a path is: {app}/requests/{id}[/status|/status/stream|/cancel],
    run/{endpoint} (fal.run, the synchronous host), else a submit."""
    if parts[:1] == ["run"]:
        return "run" if method == "POST" and len(parts) >= 3 else None
    if len(parts) >= 4 and parts[2] == "requests":
        tail = parts[4:]
        if method == "GET" and tail == ["status"]:
            return "status"
        if tail == ["status", "stream"]:
            return "stream" if method == "GET" else _NOT_ALLOWED
        if method == "PUT" and tail == ["cancel"]:
            return "cancel"
        if method == "GET" and not tail:
            return "result"
        return None
    return "submit" if method == "POST" and len(parts) >= 2 else None
