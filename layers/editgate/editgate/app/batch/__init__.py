"""The batch door, as a package: ``door`` (the queue's messages), ``manifest``, ``items``,
``summary``, ``operations`` (S3 Batch Operations), ``redrive`` (operator-only), over ``layout``,
``messages`` and ``runtime``.

Batch edits: a manifest (or a single image) dropped in the batch bucket becomes one queued
message per item, each edited by the same service as an HTTP edit, with a status record per item
and a summary per batch.

Bucket layout (input and output prefixes never overlap, so the function never triggers itself):
- ``incoming/<batch id>/manifest.jsonl`` (uploaded last) and the images it names;
- ``incoming/single/<name>.<png|jpg|jpeg|webp>`` with ``x-amz-meta-prompt`` and other parameters;
- ``batches/<batch id>/results/<item id>/<k>.<ext>``, ``batches/<batch id>/items/<item id>.json``
  and ``batches/<batch id>/summary.json`` (every key made by ``output_key``).

A batch reads only what its author may give it: objects of its own ``incoming/<batch id>/``
folder, and of the stack's source bucket (``SOURCE_BUCKET``) if it has one; each no larger than
``MAX_IMAGE_BYTES`` (a HEAD before the read). A batch id takes one manifest.

The batch queue carries three kinds of message: S3 event notifications, manifest ``chunk``s (the
manifest from a byte offset on, so no invocation reads more than ``batch_chunk_lines`` lines)
and ``item``s (one edit each). Chunks and items are checked by the rules the manifest's lines are
(a message no line could have made writes nothing).
"""
