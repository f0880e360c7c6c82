"""What names one edit across all its attempts (client retries, SQS redeliveries).

A named edit (an ``Idempotency-Key`` header, per API key, or a batch item) keeps its name for the
idempotency record's life, and reusing the name for a different request is refused. Without a
name, a fingerprint of the API key and the request's content (fields and image bytes, not the
multipart framing, which changes on every SDK retry) names it. Pure: hashing only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from editgate.domain.errors import InvalidRequest
from editgate.domain.models import EditRequest


@dataclass(frozen=True)
class EditIdentity:
    """What names one edit across all its attempts (client retries, SQS redeliveries)."""

    key: str  # the name, hashed
    digest: str  # the request's content
    named: bool  # by its sender (Idempotency-Key, batch item), rather than by its content


# As Stripe bounds its idempotency keys: room for a UUID or a client's own composite key.
MAX_IDEMPOTENCY_KEY_LENGTH = 255


def idempotency_key(header: str | None) -> str | None:
    """The Idempotency-Key a request names itself by (empty is none), checked before anything
    else happens to the request, a dry run included."""
    if header and len(header) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidRequest(
            f"Invalid value for 'Idempotency-Key': at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters.",
            param="Idempotency-Key",
            code="invalid_idempotency_key",
        )
    return header or None


def for_request(
    key_id: str, idempotency_key: str | None, request: EditRequest, inputs: Sequence[bytes | str]
) -> EditIdentity:
    """An HTTP edit: named by the caller's Idempotency-Key, else by its content; per API key
    (its id, as the authorizer found it)."""
    caller = _hash(key_id)
    content = digest(request, inputs)
    if idempotency_key:
        return EditIdentity(_hash(f"{caller}:{idempotency_key}"), content, named=True)
    return EditIdentity(_hash(f"{caller}:{content}"), content, named=False)


def for_item(
    batch_id: str, item_id: str, request: EditRequest, inputs: Sequence[bytes | str]
) -> EditIdentity:
    """A batch item: named by its batch and id."""
    return EditIdentity(_hash(f"batch:{batch_id}:{item_id}"), digest(request, inputs), named=True)


def for_job(job_id: str, request: EditRequest, inputs: Sequence[bytes | str]) -> EditIdentity:
    """An asynchronous job's edit: named by the job, so that a redelivery of its message, and a
    cancel looking for its fal requests in the journal, find the same edit."""
    return EditIdentity(job_edit_key(job_id), digest(request, inputs), named=True)


def job_edit_key(job_id: str) -> str:
    return _hash(f"job:{job_id}")


def digest(request: EditRequest, inputs: Sequence[bytes | str]) -> str:
    """What makes two edits the same edit: every field, and each image's bytes (or URL)."""
    canonical = {
        "request": request.model_dump(mode="json"),
        "inputs": [hashlib.sha256(i).hexdigest() if isinstance(i, bytes) else i for i in inputs],
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
