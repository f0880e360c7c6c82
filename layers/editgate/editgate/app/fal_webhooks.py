"""fal's webhook, received: checked before anything else (fal's signature with a key of its JWKS,
a fresh timestamp, a well-formed body about the request the headers name), then only for a
request this gateway submitted (its journal knows it), once per request; then the collect step
is queued (``CollectMessage``) and fal is answered 200.

The seam for the collect step's consumer (status -> result -> finish -> store -> record): it
reads ``CollectMessage`` documents from the collect queue; nothing here waits on fal."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from editgate.adapters.fal_jwks import FalSigningKeys
from editgate.adapters.journal import SubmissionJournal, SubmittedRequest
from editgate.adapters.queue import WorkQueue
from editgate.adapters.webhook_receipts import WebhookReceipts
from editgate.app import metrics
from editgate.domain import fal_webhooks
from editgate.domain.errors import EditgateError
from editgate.domain.fal_webhooks import WebhookRefused
from editgate.domain.json_values import json_text

logger = Logger(child=True)


class CollectMessage(BaseModel):
    """One fal request to collect, as queued for the collect step: the request, the edit that
    submitted it (its idempotency key, whose journal holds the request's URLs) and the call of
    that edit, and how fal said it ended."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: Literal["collect"] = "collect"
    request_id: str
    edit_key: str
    call: int
    # POLLED: no webhook came; the sweeper found the request ended by asking fal its status.
    status: Literal["OK", "ERROR", "POLLED"]
    received_at: float  # time.time() when the webhook was taken (or the sweep queued it)
    # What collecting the request needs, as its submit journaled it: the edit's work and the
    # call's submission. None (a message of an older version): the collector reads the journal.
    work: dict[str, Any] | None = None
    submission: dict[str, Any] | None = None


# A collect message carrying more than this (an item's parameters near SQS's 256 KiB) goes without
# what it carries: its collector reads the edit's journal instead.
CARRIED_MAX_BYTES = 192 * 1024


def collect_message(
    request_id: str, submitted: SubmittedRequest, status: Literal["OK", "ERROR", "POLLED"]
) -> CollectMessage:
    """The collect step of fal request ``request_id``, with what its lookup carries when it fits
    in one queue message."""
    carried = submitted.carried or {}
    if len(json_text(carried)) > CARRIED_MAX_BYTES:
        carried = {}
    return CollectMessage(
        request_id=request_id, edit_key=submitted.edit_key, call=submitted.call, status=status,
        received_at=time.time(), work=carried.get("work"), submission=carried.get("submission"),
    )  # fmt: skip


class WebhookNotQueued(EditgateError):
    """The webhook was genuine but its collect step could not be queued: fal delivers it again."""

    status = 503
    default_code = "collect_not_queued"
    retryable = True


@dataclass(frozen=True)
class WebhookOutcome:
    request_id: str
    queued: bool  # False: a delivery about this request was taken before (a duplicate)


@dataclass
class WebhookReceiver:
    keys: FalSigningKeys
    journal: SubmissionJournal
    receipts: WebhookReceipts
    collect_queue: WorkQueue
    tolerance_seconds: int = fal_webhooks.TOLERANCE_SECONDS

    def receive(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> WebhookOutcome:
        """Take one delivery: ``WebhookRefused`` (401) for anything not shown to be fal's own
        about a request of ours, a 400 for fal's own that cannot be read."""
        delivery = fal_webhooks.delivery_from(headers, body)
        self._check_signature(delivery)
        fal_webhooks.check_fresh(delivery, time.time() if now is None else now, self.tolerance_seconds)
        webhook = fal_webhooks.read_webhook(delivery)
        submitted = self.journal.submitted(webhook.request_id)
        if submitted is None:
            # Anyone with a fal account can have fal sign a webhook to this URL: only ours count.
            raise WebhookRefused("The fal webhook is about a request this gateway did not submit.")
        if not self.receipts.claim(webhook.request_id):
            logger.info("fal webhook delivered again", extra={"fal_request_id": webhook.request_id})
            metrics.add("WebhookDuplicates", 1)
            return WebhookOutcome(webhook.request_id, queued=False)
        message = collect_message(webhook.request_id, submitted, webhook.status)
        try:
            self.collect_queue.send([message.model_dump(mode="json")])
        except Exception:
            logger.exception("collect step not queued", extra={"fal_request_id": webhook.request_id})
            self.receipts.release(webhook.request_id)
            raise WebhookNotQueued("The webhook could not be taken now; deliver it again.") from None
        logger.info(
            "fal webhook taken", extra={"fal_request_id": webhook.request_id, "status": webhook.status}
        )
        metrics.add("WebhooksTaken", 1)
        return WebhookOutcome(webhook.request_id, queued=True)

    def _check_signature(self, delivery: fal_webhooks.SignedDelivery) -> None:
        """Signed by a key of fal's JWKS; when none of the kept keys verifies it, by one read anew
        (fal may have rotated its keys), at most once a minute."""
        if fal_webhooks.signed_by_any(delivery, self.keys.current()):
            return
        fresh = self.keys.refreshed()
        if fresh is None or not fal_webhooks.signed_by_any(delivery, fresh):
            metrics.add("WebhooksRefused", 1)
            raise WebhookRefused("Not a fal webhook: its signature is not fal's.")
