"""The edit's domain, from what a client asked to what came back: ``EditRequest`` (whatever
the transport: multipart, JSON, a batch manifest line), the ``Plan`` of provider calls that
normalization makes of it, and the ``EditResult`` with its images and failures. Data and the
rules that belong to it; no I/O."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from editgate.catalog import DEFAULT_MODEL, ModelSpec
from editgate.errors import InvalidRequest
from editgate.images import OutputFormat, Size

MAX_N = 10
# output_compression's range, as OpenAI's: 100 is the best quality.
MAX_COMPRESSION = 100

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
Fit = Literal["cover", "contain", "stretch"]
ResponseFormat = Literal["url", "b64_json"]


class EditRequest(BaseModel):
    """One edit as a client asked for it, whatever the transport (multipart, JSON, batch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1)
    model: str = DEFAULT_MODEL
    n: int = Field(default=1, ge=1, le=MAX_N)
    size: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    fit: Fit = "cover"
    response_format: ResponseFormat = "url"
    output_format: OutputFormat = "png"
    output_compression: int | None = Field(default=None, ge=0, le=MAX_COMPRESSION)
    # Everything else the client sent, as sent: model parameters, ignored and unknown keys.
    options: dict[str, Any] = Field(default_factory=dict)


class ProviderCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    payload: dict[str, Any]  # without the input image: see Plan.payloads
    num_images: int


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: ModelSpec
    calls: tuple[ProviderCall, ...]
    target: Size
    provider_size: Size
    fit: Fit
    output_format: OutputFormat
    output_compression: int | None
    response_format: ResponseFormat
    ignored: tuple[str, ...]
    passthrough: tuple[str, ...] = ()  # unknown keys, sent to the provider as they are
    cost_usd: float

    @property
    def upscaled(self) -> bool:
        return self.target.area > self.provider_size.area

    @property
    def finish_seconds_per_image(self) -> float:
        """What turning one provider image into the answer's file costs on one vCPU (nothing when
        the provider's own bytes are the answer)."""
        untouched = (
            self.target == self.provider_size and self.output_format in self.model.native_output_formats
        )
        if untouched and self.output_compression is None:
            return 0.0
        return self.target.area / 1e6 * FINISH_SECONDS_PER_MEGAPIXEL[self.output_format]

    def finish_slots(self, memory_mb: int, cpus: int) -> int:
        """How many images may be finished at once: one per vCPU (Pillow releases the GIL), as
        many as the memory allows (one AVIF encode of 4096² takes ~0.5 GB), at least one."""
        per_image = self.target.area * FINISH_BYTES_PER_PIXEL[self.output_format]
        return max(1, min(cpus, int(memory_mb * 2**20 * FINISH_MEMORY_SHARE / per_image)))

    def check_finish_fits(self, seconds_left: float) -> None:
        """Refuse, before anything is paid, a plan whose finishing cannot end in time."""
        images = sum(call.num_images for call in self.calls)
        needed = images * self.finish_seconds_per_image
        budget = seconds_left * FINISH_SHARE
        if needed <= budget:
            return
        raise InvalidRequest(
            f"{images} image(s) of {self.target} as {self.output_format} take about {needed:.0f} s to finish "
            f"on this function, over the {budget:.0f} s this request has for it: ask for fewer or smaller "
            "images, or jpeg, or send the edit as a batch edit (which has minutes).",
            param="n" if images > 1 else "size",
            code="request_too_large",
        )

    def payloads(self, image_uri: str) -> list[dict[str, Any]]:
        """What each provider call sends: the one place the input image joins the payload, for
        the real run and the dry run alike."""
        image = [image_uri] if self.model.image_field_is_list else image_uri
        return [{**call.payload, self.model.image_field: image} for call in self.calls]


class EditedImage(BaseModel):
    key: str  # where the image is stored in the results bucket
    url: str | None = None
    b64_json: str | None = None


class CallFailure(BaseModel):
    """A provider call of a partly answered request: what it would have made and why it did not."""

    images: int
    code: str | None
    message: str
    # Whether sending the same request again can make or collect these images: then the answer
    # is not final, and the retry collects what fal already made without a second charge.
    retryable: bool = False


class EditResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    created: int
    request_id: str
    model: str
    provider: str
    images: tuple[EditedImage, ...]
    size: Size
    output_format: OutputFormat
    response_format: str
    cost_usd: float
    billed_images: int = 0  # every image the provider made (and bills), answered or not
    provider_request_ids: tuple[str, ...]
    ignored_params: tuple[str, ...]
    # Keys the gateway does not know and sent to the provider as they are (empty in records
    # stored before it was answered).
    passthrough_params: tuple[str, ...] = ()
    resampled_from: Size | None  # the provider's size, when the answer's was reached by resampling
    upscaled: bool
    failures: tuple[CallFailure, ...] = ()
    provider_seconds: float = 0.0  # the longest provider call, submit to result
    provider_retries: int = 0

    @property
    def complete(self) -> bool:
        """Nothing is missing that the same request again could make or collect: a final answer."""
        return not any(failure.retryable for failure in self.failures)
