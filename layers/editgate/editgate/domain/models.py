"""The edit's domain, from what a client asked to what came back: ``EditRequest`` (whatever
the transport: multipart, JSON, a batch manifest line), the ``Plan`` of provider calls that
normalization makes of it, and the ``EditResult`` with its images and failures. Data and the
rules that belong to it; no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from editgate.domain import envelope
from editgate.domain.catalog import DEFAULT_MODEL, ModelSpec
from editgate.domain.errors import InvalidRequest
from editgate.domain.images import OutputFormat, Size
from editgate.domain.json_values import check_value

MAX_N = 10
# output_compression's range, as OpenAI's: 100 is the best quality.
MAX_COMPRESSION = 100

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

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Self:
        """An edit from its parameters, whatever carried them (form, JSON, a batch manifest line):
        known fields in their place, every other one an option, validated once. Whatever carried
        them (a queued batch item is read by json.loads, not ``json_values.parse_json``), values
        nest at most ``MAX_DEPTH`` deep and every number is finite."""
        check_value(dict(values))
        fields = frozenset(cls.model_fields) - {"options"}
        known = {k: v for k, v in values.items() if k in fields}
        options = {k: v for k, v in values.items() if k not in fields}
        try:
            return cls.model_validate({**known, "options": options})
        except ValidationError as exc:
            raise _error_from_validation(exc.errors()) from None


def _error_from_validation(errors: Sequence[Mapping[str, Any]]) -> InvalidRequest:
    """The first of ``EditRequest``'s validation errors as an OpenAI 400 naming its parameter
    (unknown fields never reach it: they are options)."""
    first = errors[0]
    param = str(first["loc"][0]) if first["loc"] else None
    if first["type"] == "missing":
        return InvalidRequest(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if param is None:
        return InvalidRequest(f"The request body could not be read: {first['msg']}.", code="invalid_body")
    return InvalidRequest(f"Invalid value for '{param}': {first['msg']}.", param=param)


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
        return envelope.finish_seconds(self.target.area, self.output_format)

    def finish_slots(self, memory_mb: int, cpus: int) -> int:
        """How many of this plan's images may be finished at once on this function."""
        return envelope.finish_slots(self.target.area, self.output_format, memory_mb, cpus)

    def check_finish_fits(self, seconds_left: float) -> None:
        """Refuse, before anything is paid, a plan whose finishing cannot end in time."""
        images = sum(call.num_images for call in self.calls)
        needed = images * self.finish_seconds_per_image
        budget = envelope.finish_budget(seconds_left)
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
    response_format: ResponseFormat
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
