"""Lambda's envelope, the limits every edit must fit, in one place: the synchronous answer's
size, the time an image's finishing takes and the memory it needs, and how much of an
invocation is kept to answer. Pure: the callers bring the clock and the function's size."""

from __future__ import annotations

from editgate.domain.errors import InvalidRequest, PayloadTooLarge

# Lambda's synchronous response limit, which a b64_json answer must fit.
LAMBDA_RESPONSE_LIMIT = 6_291_456
# The most bytes a pixel can take in each format (incompressible RGBA for the lossless ones), so
# that a b64_json answer that might not fit is refused before anything is paid for. Checked
# against encoded noise by tests/unit/test_images.py.
WORST_BYTES_PER_PIXEL = {"png": 4.1, "webp": 4.1, "avif": 3.6, "jpeg": 3.0, "gif": 1.5}
# Seconds one vCPU (a 1,769 MB Lambda) takes to resize a provider image and encode one megapixel
# of the answer, the slowest of 1024², 2048² and 4096² (bench/finish_costs.py) over several runs
# on a shared machine whose speed varied by half within an hour, with a 25 % margin.
FINISH_SECONDS_PER_MEGAPIXEL = {"png": 0.22, "jpeg": 0.08, "webp": 0.32, "gif": 0.64, "avif": 2.2}
# Of the time a request has when it is admitted, the share its finishing may take: the rest is
# for the provider.
FINISH_SHARE = 0.5
# Memory one image's finishing takes at its peak, per pixel of the answer (decoded provider image,
# resized copy, encoder state), the worst of a same-size and a 4x upscale at 4096², +10 %
# (bench/memory.py's figures come from these).
FINISH_BYTES_PER_PIXEL = {"png": 6, "jpeg": 6, "webp": 13, "gif": 14, "avif": 32}
# The share of the function's memory that images being finished side by side may take: the rest
# is the runtime, the downloaded bytes and the answers.
FINISH_MEMORY_SHARE = 0.4
# What an HTTPS edit leaves of its invocation to answer with a clean 504. The template gives the
# function API Gateway's integration timeout (ApiTimeoutSeconds) and REQUEST_DEADLINE_SECONDS the
# same, so this margin is what keeps the answer inside the gateway's time, which also counts a
# cold start's init and the network: 27 s of 29 by default.
HTTPS_ANSWER_MARGIN_SECONDS = 2.0
# A batch item leaves this much of the invocation (at most 5 s, at most a fifth of it) to record it.
BATCH_MARGIN_SECONDS = 5.0


def https_seconds(limit_seconds: float, remaining_ms: int) -> float:
    """How long an HTTPS edit may take: the configured limit or the invocation's remaining time
    less the answer's margin, whichever ends first."""
    return min(limit_seconds, remaining_ms / 1000 - HTTPS_ANSWER_MARGIN_SECONDS)


def batch_seconds(remaining_ms: int) -> float:
    """How long a batch item may take: items have no HTTP limit, only the invocation's own time,
    less a margin to record the outcome."""
    remaining = remaining_ms / 1000
    return remaining - min(BATCH_MARGIN_SECONDS, remaining / 5)


def check_answer_fits(n: int, area: int, output_format: str, size_text: str) -> None:
    """A b64_json answer that might not fit Lambda's response is refused before anything is paid."""
    worst = n * area * WORST_BYTES_PER_PIXEL[output_format] * 4 / 3
    if worst > LAMBDA_RESPONSE_LIMIT:
        raise InvalidRequest(
            f"{n} image(s) of {size_text} as {output_format} in base64 may exceed Lambda's "
            f"{LAMBDA_RESPONSE_LIMIT:,}-byte response limit: use response_format=url "
            "(or a smaller n or size).",
            param="response_format",
            code="response_too_large",
        )


def check_b64_fits(size: int) -> None:
    """The images as base64, measured once made (the estimate above is the worst case)."""
    if size > LAMBDA_RESPONSE_LIMIT:
        raise PayloadTooLarge(
            f"The images are {size:,} bytes as base64, over Lambda's "
            f"{LAMBDA_RESPONSE_LIMIT:,}-byte response limit: ask for response_format=url.",
            param="response_format",
        )


def json_string_size(text: str) -> int:
    """The characters a ``text`` of printable ASCII and line feeds (events, JSON) takes as a JSON
    string, as Lambda's response holds a text body: its quotes, backslashes and line feeds escaped
    (counted, not encoded again: a 6 MB body is counted in a few ms, encoded in 20)."""
    return len(text) + 2 + text.count('"') + text.count("\\") + text.count("\n")


def check_stream_fits(events: str) -> None:
    """A ``stream=true`` answer, measured once made as Lambda's response holds it: the images'
    base64 and each event's own fields, escaped."""
    size = json_string_size(events)
    if size > LAMBDA_RESPONSE_LIMIT:
        raise PayloadTooLarge(
            f"The answer's events are {size:,} bytes, over Lambda's {LAMBDA_RESPONSE_LIMIT:,}-byte "
            "response limit: ask for fewer or smaller images, or for response_format=url without stream.",
            param="stream",
        )


def finish_seconds(area: int, output_format: str) -> float:
    """What turning one provider image into an answer of ``area`` pixels costs on one vCPU."""
    return area / 1e6 * FINISH_SECONDS_PER_MEGAPIXEL[output_format]


def finish_slots(area: int, output_format: str, memory_mb: int, cpus: int) -> int:
    """How many images may be finished at once: one per vCPU (Pillow releases the GIL), as many
    as the memory allows (one AVIF encode of 4096² takes ~0.5 GB), at least one."""
    per_image = area * FINISH_BYTES_PER_PIXEL[output_format]
    return max(1, min(cpus, int(memory_mb * 2**20 * FINISH_MEMORY_SHARE / per_image)))


def finish_budget(seconds_left: float) -> float:
    """Of the time a request has left when it is admitted, what its finishing may take."""
    return seconds_left * FINISH_SHARE
