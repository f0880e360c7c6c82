"""The composition root: every service built from the settings, once per cold start. The only
module that knows them all; the handlers ask it for their door's services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from editgate.adapters import secrets
from editgate.adapters.callbacks import CallbackSender
from editgate.adapters.collect_journal import CollectJournal
from editgate.adapters.fal import FalClient
from editgate.adapters.fal_jwks import FalSigningKeys
from editgate.adapters.fetch import ImageFetcher, allowing
from editgate.adapters.idempotency import Deduplicator
from editgate.adapters.jobs import JobTable
from editgate.adapters.journal import SubmissionJournal
from editgate.adapters.keys import KeyDirectory, WebhookSecrets
from editgate.adapters.ledger import BatchLedger
from editgate.adapters.objects import ObjectStore
from editgate.adapters.queue import WorkQueue
from editgate.adapters.webhook_receipts import WebhookReceipts
from editgate.app.batch.layout import ImageRules
from editgate.app.batch.runtime import BatchRuntime, Collecting, JobRunner
from editgate.app.edit_service import EditService
from editgate.app.fal_webhooks import WebhookReceiver
from editgate.app.jobs import JobService
from editgate.app.services import EditLimits, Services
from editgate.domain import catalog
from editgate.domain.catalog import ModelSpec
from editgate.settings import Settings, WebhookSettings


@dataclass(frozen=True)
class HttpsDoor:
    """What the edit API function needs."""

    edits: EditService
    catalog: dict[str, ModelSpec]
    # Where the documentation's callers' keys are checked; None when the operator made it public.
    doc_keys: KeyDirectory | None
    deadline_seconds: float
    results: ObjectStore
    # Whether fal's key can be read from its secret (GET /v1/health); the key never leaves it.
    fal_key_readable: Callable[[], bool]
    # The origin whose pages may call the API from a browser (CORS), if any.
    cors_allow_origin: str | None
    jobs: JobService


def https_door(settings: Settings | None = None) -> HttpsDoor:
    settings = settings or Settings.from_env()
    services = edit_services(settings)
    doc_keys = None
    if not settings.public_docs:
        # Without a keys' table every key is refused: the documentation is never open by mistake.
        doc_keys = KeyDirectory(settings.api_keys_table or "", settings.key_cache_seconds)
    return HttpsDoor(
        EditService(services),
        services.catalog,
        doc_keys,
        settings.request_deadline_seconds,
        services.store,
        fal_key_readable=partial(
            secrets.secret_readable, settings.fal_key_secret_name, settings.secrets_max_age_seconds
        ),
        cors_allow_origin=settings.cors_allow_origins,
        jobs=job_service(settings, EditService(services)),
    )


def job_service(settings: Settings, edits: EditService) -> JobService:
    """The HTTPS door's jobs (the template always configures them)."""
    if not (settings.jobs_table and settings.jobs_queue_url and settings.jobs_journal_table):
        raise RuntimeError(
            "editgate is misconfigured: the edit API's jobs need JOBS_TABLE, JOBS_QUEUE_URL "
            "and JOBS_JOURNAL_TABLE"
        )
    return JobService(
        edits=edits,
        table=JobTable(settings.jobs_table),
        queue=WorkQueue(settings.jobs_queue_url),
        prefix=settings.jobs_prefix,
        run_timeout_seconds=settings.jobs_run_timeout_seconds,
        callbacks=CallbackSender(allowed=allowing(settings.callback_allowed_networks)),
        secrets=WebhookSecrets(settings.api_keys_table or ""),
        journal=SubmissionJournal(settings.jobs_journal_table),
    )


def job_runner(settings: Settings, services: Services) -> JobRunner | None:
    """The batch function's jobs: their edits store in the edit API's results bucket."""
    if not settings.jobs_table:
        return None
    store = ObjectStore(settings.jobs_bucket or settings.results_bucket, "", settings.presign_expiry_seconds)
    return JobRunner(
        edits=EditService(replace(services, store=store)),
        table=JobTable(settings.jobs_table),
        prefix=settings.jobs_prefix,
        callbacks=CallbackSender(allowed=allowing(settings.callback_allowed_networks)),
        secrets=WebhookSecrets(settings.api_keys_table or ""),
        callback_retry_seconds=settings.callback_retry_seconds,
        callback_attempts=settings.callback_attempts,
        stale_seconds=settings.job_stale_seconds,
    )


def batch_door(settings: Settings | None = None) -> BatchRuntime:
    """What the batch function needs."""
    settings = settings or Settings.from_env()
    if not (settings.batch_table and settings.batch_queue_url):
        raise RuntimeError("editgate is misconfigured: batch edits need BATCH_TABLE and BATCH_QUEUE_URL")
    if not (settings.fal_webhook_url and settings.collect_queue_url):
        raise RuntimeError(
            "editgate is misconfigured: batch edits need FAL_WEBHOOK_URL and COLLECT_QUEUE_URL"
        )
    services = edit_services(settings)
    collecting = Collecting(
        webhook_url=settings.fal_webhook_url,
        journal=CollectJournal(settings.idempotency_table),
        queue=WorkQueue(settings.collect_queue_url),
        receipts=WebhookReceipts(settings.idempotency_table, settings.fal_webhook_receipt_ttl_seconds),
        sweep_after_seconds=settings.sweep_after_seconds,
        journal_ttl_seconds=settings.fal_webhook_receipt_ttl_seconds,
    )
    return BatchRuntime(
        edits=EditService(services),
        store=services.store,
        ledger=BatchLedger(settings.batch_table),
        queue=WorkQueue(settings.batch_queue_url),
        rules=ImageRules(services.store.bucket, settings.source_bucket),
        max_receives=settings.batch_max_receives,
        chunk_lines=settings.batch_chunk_lines,
        defaults=settings.batch_defaults,
        max_image_bytes=settings.max_image_bytes,
        collecting=collecting,
        jobs=job_runner(settings, services),
    )


def webhook_door(settings: WebhookSettings | None = None) -> WebhookReceiver:
    """What the fal webhook function needs: no fal key, no bucket; the journal only to look up."""
    settings = settings or WebhookSettings.from_env()
    keys = FalSigningKeys(
        settings.fal_jwks_url,
        max_age_seconds=settings.fal_jwks_cache_seconds,
        refresh_seconds=settings.fal_jwks_refresh_seconds,
    )
    return WebhookReceiver(
        keys=keys,
        journal=SubmissionJournal(settings.idempotency_table),
        receipts=WebhookReceipts(settings.idempotency_table, settings.fal_webhook_receipt_ttl_seconds),
        collect_queue=WorkQueue(settings.collect_queue_url),
        tolerance_seconds=settings.fal_webhook_tolerance_seconds,
    )


def edit_services(settings: Settings) -> Services:
    """What an edit needs, from the settings alone."""
    fal_key = partial(secrets.secret_text, settings.fal_key_secret_name, settings.secrets_max_age_seconds)
    return Services(
        limits=EditLimits(
            max_input_pixels=settings.max_input_pixels,
            allow_safety_checker_off=settings.allow_safety_checker_off,
            memory_mb=settings.aws_lambda_function_memory_size,
        ),
        fal=FalClient(
            settings.fal_queue_url,
            fal_key,
            poll_interval=settings.fal_poll_interval_seconds,
            retry_base_seconds=settings.fal_retry_base_seconds,
            retention_seconds=settings.provider_retention_seconds,
        ),
        store=ObjectStore(settings.results_bucket, settings.results_prefix, settings.presign_expiry_seconds),
        fetcher=ImageFetcher(max_bytes=settings.max_image_bytes),
        deduplicator=Deduplicator(
            settings.idempotency_table,
            keyed_ttl_seconds=settings.idempotency_ttl_seconds,
            fingerprint_ttl_seconds=settings.fingerprint_ttl_seconds,
        ),
        journal=SubmissionJournal(settings.idempotency_table),
        catalog=build_catalog(settings),
    )


def build_catalog(settings: Settings) -> dict[str, ModelSpec]:
    """The catalog, with any endpoint ids the deployment overrides (``FAL_ENDPOINTS``)."""
    return catalog.with_endpoints(settings.fal_endpoints)
