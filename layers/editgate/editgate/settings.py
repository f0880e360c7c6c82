"""Settings, read once from the environment into a typed model.

Nothing else in the package reads ``os.environ``: handlers build one ``Settings`` at cold start
and pass it (or what it holds) down.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class SettingsError(RuntimeError):
    """The deployment is misconfigured: raised at cold start, never per request."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    results_bucket: str = Field(min_length=3)
    results_prefix: str = "results/"
    presign_expiry_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    fal_key_secret_name: str = Field(min_length=1)
    # The HTTP API's keys; a function that serves no HTTP (the batch function) has none.
    api_keys_secret_name: str | None = None
    idempotency_table: str = Field(min_length=3)
    # How long an Idempotency-Key names its edit, and how long an identical request without one
    # is taken for a client's retry of the first.
    idempotency_ttl_seconds: int = Field(default=3600, ge=60)
    fingerprint_ttl_seconds: int = Field(default=120, ge=1)
    secrets_max_age_seconds: int = Field(default=300, ge=0)
    fal_queue_url: str = "https://queue.fal.run"
    # fal retires endpoints: model id -> fal endpoint id, over the catalog's defaults.
    fal_endpoints: dict[str, str] = Field(default_factory=dict)
    # The whole fal round trip must end before API Gateway's 29 s integration timeout.
    request_deadline_seconds: float = Field(default=27.0, gt=0)
    fal_poll_interval_seconds: float = Field(default=0.25, gt=0)
    # First retry delay of a failed fal call (doubling, capped at 30 s, with jitter: fal-client's).
    fal_retry_base_seconds: float = Field(default=0.1, gt=0)
    max_input_pixels: int = Field(default=40_000_000, gt=0)
    # The most bytes read for one input image given by URL (the JSON body's image_url).
    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    # Whether a client may send enable_safety_checker=false (the operator's call, off by default).
    allow_safety_checker_off: bool = False
    # Batch edits (the batch function only): its ledger table, its queue and dead-letter queue.
    batch_table: str | None = None
    batch_queue_url: str | None = None
    batch_dead_letter_queue_url: str | None = None
    # SQS's maxReceiveCount: on the last receive a failing item is recorded failed, not retried.
    batch_max_receives: int = Field(default=3, ge=1)
    # Manifest lines fanned out by one invocation before it hands the rest to the next message.
    batch_chunk_lines: int = Field(default=1000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _replays_get_live_urls(self) -> Settings:
        # A replayed answer carries the first answer's presigned URLs: they must still work.
        if self.idempotency_ttl_seconds > self.presign_expiry_seconds:
            raise ValueError(
                "IDEMPOTENCY_TTL_SECONDS must not exceed PRESIGN_EXPIRY_SECONDS "
                "(a replay would carry dead URLs)"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        names = {
            "results_bucket": "RESULTS_BUCKET",
            "results_prefix": "RESULTS_PREFIX",
            "presign_expiry_seconds": "PRESIGN_EXPIRY_SECONDS",
            "fal_key_secret_name": "FAL_KEY_SECRET_NAME",
            "api_keys_secret_name": "API_KEYS_SECRET_NAME",
            "idempotency_table": "IDEMPOTENCY_TABLE",
            "idempotency_ttl_seconds": "IDEMPOTENCY_TTL_SECONDS",
            "fingerprint_ttl_seconds": "FINGERPRINT_TTL_SECONDS",
            "secrets_max_age_seconds": "SECRETS_MAX_AGE_SECONDS",
            "fal_queue_url": "FAL_QUEUE_URL",
            "fal_endpoints": "FAL_ENDPOINTS",
            "request_deadline_seconds": "REQUEST_DEADLINE_SECONDS",
            "fal_poll_interval_seconds": "FAL_POLL_INTERVAL_SECONDS",
            "fal_retry_base_seconds": "FAL_RETRY_BASE_SECONDS",
            "max_input_pixels": "MAX_INPUT_PIXELS",
            "max_image_bytes": "MAX_IMAGE_BYTES",
            "allow_safety_checker_off": "ALLOW_SAFETY_CHECKER_OFF",
            "batch_table": "BATCH_TABLE",
            "batch_queue_url": "BATCH_QUEUE_URL",
            "batch_dead_letter_queue_url": "BATCH_DEAD_LETTER_QUEUE_URL",
            "batch_max_receives": "BATCH_MAX_RECEIVES",
            "batch_chunk_lines": "BATCH_CHUNK_LINES",
        }
        values: dict[str, object] = {field: env[var] for field, var in names.items() if env.get(var)}
        if "fal_endpoints" in values:  # JSON: {"hidream-e1-1": "fal-ai/hidream-e1-1"}
            try:
                values["fal_endpoints"] = json.loads(env["FAL_ENDPOINTS"])
            except json.JSONDecodeError:
                raise SettingsError(
                    "editgate is misconfigured: FAL_ENDPOINTS must be a JSON object"
                ) from None
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{names[str(err['loc'][0])]}: {err['msg']}" if err["loc"] else err["msg"]
                for err in exc.errors()
            )
            raise SettingsError(f"editgate is misconfigured: {problems}") from None
