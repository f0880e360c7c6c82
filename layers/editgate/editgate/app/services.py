"""What the use cases are given: the adapters and the limits they work within, built once per
cold start by ``editgate.wiring`` (tests give fakes in their place)."""

from __future__ import annotations

from dataclasses import dataclass, field

from editgate.adapters.fal import FalClient
from editgate.adapters.fetch import ImageFetcher
from editgate.adapters.idempotency import Deduplicator
from editgate.adapters.journal import SubmissionJournal
from editgate.adapters.objects import ObjectStore
from editgate.domain.catalog import ModelSpec
from editgate.domain.errors import InvalidRequest

# An input image: uploaded bytes, or a URL / data: URI to fetch.
InputImage = bytes | str


@dataclass(frozen=True)
class EditLimits:
    """The operator's limits on an edit."""

    max_input_pixels: int
    # Whether a client may send enable_safety_checker=false.
    allow_safety_checker_off: bool
    # The function's memory, which bounds how many images are finished at once.
    memory_mb: int


@dataclass
class Services:
    """What an edit needs, built once per cold start."""

    limits: EditLimits
    fal: FalClient
    store: ObjectStore
    fetcher: ImageFetcher
    deduplicator: Deduplicator
    journal: SubmissionJournal
    catalog: dict[str, ModelSpec] = field(default_factory=dict)

    def model(self, model_id: str) -> ModelSpec:
        spec = self.catalog.get(model_id)
        if spec is None:
            known = ", ".join(sorted(self.catalog))
            raise InvalidRequest(
                f"Invalid value for 'model': '{model_id}' is not a model of this gateway (known: {known}).",
                param="model",
                code="model_not_found",
            )
        return spec
