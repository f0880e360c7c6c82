"""Batch edits: the batch queue's messages (S3 notifications, manifest chunks, items) and the
collect queue's (fal's webhooks) through Powertools' BatchProcessor, S3 Batch Operations tasks,
and the sweeper's schedule. Wiring only: one call into ``editgate.app.batch`` per record or task."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent
from aws_lambda_powertools.utilities.data_classes.s3_batch_operation_event import S3BatchOperationResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from editgate import wiring
from editgate.app.batch import door, operations, sweeper

logger = Logger()
tracer = Tracer()
metrics = Metrics()

runtime = wiring.batch_door()
# One item per invocation (BatchSize 1): its failure is the whole batch's, reported (not raised)
# so that Lambda logs no function error for an item SQS simply retries.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    receive_count = int(record.attributes.approximate_receive_count)
    remaining_ms = lambda_context.get_remaining_time_in_millis()
    door.handle_record(record.body, runtime, receive_count=receive_count, remaining_ms=remaining_ms)


def s3_batch_operations(event: S3BatchOperationEvent, context: LambdaContext) -> dict[str, Any]:
    """S3 sends one task per invocation and reads one result back."""
    code, text = operations.run_task(event, runtime, remaining_ms=context.get_remaining_time_in_millis())
    answer = S3BatchOperationResponse(
        event.invocation_schema_version, event.invocation_id, "PermanentFailure"
    )
    answer.add_result(event.task.build_task_batch_response(code, text))
    return answer.asdict()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="BatchInvocations", unit=MetricUnit.Count, value=1)
    runtime.edits.register(context)
    if event.get("detail-type") == "Scheduled Event":  # EventBridge's schedule: the sweeper
        return {"queued": sweeper.sweep(runtime, door.deadline_for(context.get_remaining_time_in_millis()))}
    if "invocationSchemaVersion" in event:
        return s3_batch_operations(S3BatchOperationEvent(event), context)
    partial = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(partial)
