"""Settings, read once from the environment into typed models by pydantic-settings.

Nothing else in the package reads ``os.environ``: handlers build one settings object at cold
start and pass it (or what it holds) down. Each field is read from the variable of its name in
capitals (``results_bucket`` from ``RESULTS_BUCKET``); maps are JSON; an empty variable is unset.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class SettingsError(RuntimeError):
    """The deployment is misconfigured: raised at cold start, never per request."""


class EnvSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True)

    @classmethod
    def from_env(cls) -> Self:
        """The settings in this process's environment, or a ``SettingsError`` naming each
        variable that is missing or wrong."""
        try:
            return cls()
        except ValidationError as exc:
            problems = "; ".join(
                f"{str(err['loc'][0]).upper()}: {err['msg']}" if err["loc"] else err["msg"]
                for err in exc.errors()
            )
            raise SettingsError(f"editgate is misconfigured: {problems}") from None


class KeySettings(EnvSettings):
    """The API-key authorizer's settings: where the keys' hashes are, and how long one read of
    a key is reused (API Gateway also caches each answer for 5 minutes)."""

    api_keys_table: str = Field(min_length=3)
    key_cache_seconds: int = Field(default=60, ge=0)


class WebhookReceiptSettings(EnvSettings):
    """What the two functions that take fal's webhooks (or sweep for them) share."""

    # How long a taken webhook (or swept request) is remembered: past fal's 2 hours of retries.
    fal_webhook_receipt_ttl_seconds: int = Field(default=24 * 3600, ge=3 * 3600)


class WebhookSettings(WebhookReceiptSettings):
    """The fal webhook function's settings: fal's JWKS, where the submissions' journal is (the
    batch idempotency table: batch items and jobs submit with a webhook), and the collect queue."""

    idempotency_table: str = Field(min_length=3)
    collect_queue_url: str = Field(min_length=1)
    fal_jwks_url: str = "https://rest.alpha.fal.ai/.well-known/jwks.json"
    # fal advises keeping its keys up to a day; a delivery no kept key verifies reads them again,
    # at most once per fal_jwks_refresh_seconds.
    fal_jwks_cache_seconds: int = Field(default=24 * 3600, ge=0, le=24 * 3600)
    fal_jwks_refresh_seconds: int = Field(default=60, ge=0)
    # fal's leeway: a delivery stamped further from now is refused.
    fal_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=300)


class Settings(WebhookReceiptSettings):
    results_bucket: str = Field(min_length=3)
    results_prefix: str = "results/"
    presign_expiry_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    fal_key_secret_name: str = Field(min_length=1)
    idempotency_table: str = Field(min_length=3)
    # How long an Idempotency-Key names its edit, and how long an identical request without one
    # is taken for a client's retry of the first.
    idempotency_ttl_seconds: int = Field(default=3600, ge=60)
    fingerprint_ttl_seconds: int = Field(default=120, ge=1)
    secrets_max_age_seconds: int = Field(default=300, ge=0)
    fal_queue_url: str = "https://queue.fal.run"
    # fal retires endpoints: model id -> fal endpoint id, over the catalog's defaults.
    # Decoded by its validator, so that a map that is not JSON is named like any other mistake.
    fal_endpoints: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # The most an HTTPS edit may take (the template sets ApiTimeoutSeconds, API Gateway's integration
    # timeout and the function's); the invocation's time less a margin bounds it too (domain.envelope).
    request_deadline_seconds: float = Field(default=27.0, gt=0)
    fal_poll_interval_seconds: float = Field(default=0.25, gt=0)
    # First retry delay of a failed fal call (doubling, capped at 30 s, with jitter: fal-client's).
    fal_retry_base_seconds: float = Field(default=0.1, gt=0)
    max_input_pixels: int = Field(default=40_000_000, gt=0)
    # The most bytes read for one input image given by URL (the JSON body's image_url).
    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    # Lambda's own variable: the function's memory, which bounds how many images finish at once.
    aws_lambda_function_memory_size: int = Field(default=1769, ge=128)
    # Whether a client may send enable_safety_checker=false (the operator's call, off by default).
    allow_safety_checker_off: bool = False
    # The OpenAPI document and Swagger UI: (by default) open to anyone, since they describe the API
    # and hold no secret, or only to holders of a key, checked by the function against the keys'
    # table (API Gateway lets these routes through).
    public_docs: bool = True
    # The one origin (or "*") whose browser pages may call the API (CORS); None: no CORS headers.
    cors_allow_origins: str | None = Field(default=None, pattern=r"^(\*|https?://[^/\s,*]+)$")
    api_keys_table: str | None = None
    key_cache_seconds: int = Field(default=60, ge=0)
    # Batch edits (the batch function only): its ledger table, its queue and dead-letter queue.
    batch_table: str | None = None
    batch_queue_url: str | None = None
    # SQS's maxReceiveCount: on the last receive a failing item is recorded failed, not retried.
    batch_max_receives: int = Field(default=3, ge=1)
    # Manifest lines fanned out by one invocation before it hands the rest to the next message.
    batch_chunk_lines: int = Field(default=1000, ge=1, le=100_000)
    # The batch function: fal tells of an item's end by webhook at this URL (the API's
    # /v1/fal/webhook), whose function queues the collect step on the collect queue; the sweeper
    # queues there too the requests whose webhook has not come after sweep_after_seconds.
    fal_webhook_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    collect_queue_url: str | None = None
    sweep_after_seconds: int = Field(default=180, ge=0)
    # How long fal's CDN keeps an edit's output files (X-Fal-Object-Lifecycle-Preference): as long
    # as a later attempt may still collect them (a keyed retry, a batch item's redelivery); fal
    # keeps no copy of the payloads at all.
    provider_retention_seconds: int = Field(default=3600, ge=60)
    # The one bucket besides a batch's own folder that batches read images from (s3:// manifest
    # lines, S3 Batch Operations tasks): the template's SourceBucketName. None: no s3:// images.
    source_bucket: str | None = None
    # Edit parameters under every batch item's own (a manifest's defaults and lines, a single
    # upload's metadata, an S3 Batch Operations job's user arguments): a schema 1.0 job has no user
    # arguments, so its prompt can only come from here (the template's BatchDefaults, JSON).
    batch_defaults: Annotated[dict[str, Any], NoDecode] = Field(default_factory=dict)
    # Asynchronous jobs (Prefer: respond-async): their table (None: no jobs), where their folders
    # are in the results bucket, and (the edit API) the batch queue that runs them, the batch
    # function's timeout (what a job is admitted with) and its journal (a cancel's fal requests).
    jobs_table: str | None = None
    jobs_prefix: str = "results/jobs/"
    jobs_queue_url: str | None = None
    jobs_run_timeout_seconds: int = Field(default=300, ge=1, le=900)
    jobs_journal_table: str | None = None
    # The batch function: the results bucket the jobs' folders are in (the edit API's).
    jobs_bucket: str | None = None
    # A failed callback delivery is tried again after this, doubling, up to callback_attempts in all.
    callback_retry_seconds: int = Field(default=30, ge=0, le=900)
    callback_attempts: int = Field(default=6, ge=1, le=20)
    # The batch function's jobs' sweeper fails a job that has not ended this long after it was
    # queued or started (its message dead-lettered, or never came): past its message's last retry
    # (2 x the queue's visibility, 6 x the function's timeout each, then one run), which the
    # template sets from BatchTimeoutSeconds; the default covers timeouts up to 300 s.
    job_stale_seconds: int = Field(default=2 * 3600, ge=60)
    # Networks a callback_url may reach besides public addresses (JSON list of CIDRs). Only the
    # local stack sets it (its tests' receivers listen on loopback); the template never does.
    callback_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("fal_endpoints", "batch_defaults", "callback_allowed_networks", mode="before")
    @classmethod
    def _json_map(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("callback_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network)  # a ValueError names what is not a network
        return value

    @model_validator(mode="after")
    def _replays_get_live_urls(self) -> Settings:
        # A replayed answer carries the first answer's presigned URLs: they must still work.
        if self.idempotency_ttl_seconds > self.presign_expiry_seconds:
            raise ValueError(
                "IDEMPOTENCY_TTL_SECONDS must not exceed PRESIGN_EXPIRY_SECONDS "
                "(a replay would carry dead URLs)"
            )
        return self

    @model_validator(mode="after")
    def _retries_find_the_images(self) -> Settings:
        # A retry within the Idempotency-Key's life collects fal's images: they must still exist.
        if self.provider_retention_seconds < self.idempotency_ttl_seconds:
            raise ValueError(
                "PROVIDER_RETENTION_SECONDS must not be less than IDEMPOTENCY_TTL_SECONDS "
                "(a retry could not collect the images fal made and billed)"
            )
        return self

    @model_validator(mode="after")
    def _source_is_not_the_results(self) -> Settings:
        # Batches would read each other's results and uploads.
        if self.source_bucket == self.results_bucket:
            raise ValueError("SOURCE_BUCKET must not be the bucket results are written to")
        return self
