"""Where a batch's objects are: its bucket layout (``incoming/`` in, ``batches/`` out, never
overlapping), the ids it takes, the one helper that makes every key it writes, and where a batch
may read images from."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import StringConstraints

INCOMING = "incoming"
SINGLE_BATCH = "single"
S3_JOB_PREFIX = "s3job-"  # the batch of an S3 Batch Operations job: s3job-<job id>
MANIFEST_NAME = "manifest.jsonl"
OUTPUT = "batches"
# What a batch takes as an image, by name (any case): single uploads, `editgate batch run`.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ID = re.compile(ID_PATTERN)
# A name in a batch's output folder: an id, or a line's id made unique (``<id>~line-<n>``).
_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,199}$")
BatchId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def output_key(batch_id: str, *names: str) -> str:
    """``batches/<batch id>/<names…>``, the key of anything a batch writes. Each part must be a
    plain name (an id, ``items``, ``0.png``: never empty, ``.``, ``..`` or holding a ``/``), so
    that nothing is ever written outside the batch's own folder."""
    for name in (batch_id, *names):
        if not _OUTPUT_NAME.match(name):
            raise ValueError(f"not a name in a batch's folder: {name!r}")
    return "/".join((OUTPUT, batch_id, *names))


def manifest_batch_id(batch_id: str) -> bool:
    """Whether a manifest may start batch ``batch_id``: a valid id, and none of those single
    uploads and S3 Batch Operations jobs hold (``single``, ``s3job-…``)."""
    reserved = batch_id == SINGLE_BATCH or batch_id.startswith(S3_JOB_PREFIX)
    return bool(ID.match(batch_id)) and not reserved


@dataclass(frozen=True)
class ImageRules:
    """Where a batch may read images: the stack's source bucket, if it has one, and a manifest's
    or single upload's own folder of the batch bucket, ``incoming/<batch id>/`` (what its author
    uploaded). Never another batch's folder, never any batch's results."""

    batch_bucket: str
    source_bucket: str | None

    def refusal(self, batch_id: str, bucket: str, key: str) -> str | None:
        """Why batch ``batch_id`` may not read ``s3://bucket/key``; None when it may."""
        folder = f"{INCOMING}/{batch_id}/"
        if bucket == self.source_bucket:
            return None
        uploaded = not batch_id.startswith(S3_JOB_PREFIX)  # an S3 job has no folder: its operator's
        if bucket == self.batch_bucket and key.startswith(folder) and uploaded:
            if all(part not in ("", ".", "..") for part in key.removeprefix(folder).split("/")):
                return None
            return "a name beside the manifest has no empty, '.' or '..' path segments"
        if self.source_bucket is None:
            return (
                "s3:// images are read from the stack's source bucket (SourceBucketName) only, "
                "and this stack has none: put the image beside the manifest"
            )
        return (
            "images are read from beside the manifest or from the stack's source bucket, "
            f"s3://{self.source_bucket}/, only"
        )


def safe_id(text: str, fallback: str = "item") -> str:
    """Any text as the start of an item id: letters, digits, '.', '_' and '-', from a letter or
    digit on, at most 100 characters (room for a suffix within the id's 128)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:100]
    return cleaned or fallback


def digest(value: object, length: int = 8) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:length]
