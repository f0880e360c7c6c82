"""One of the stack's functions in a process of its own, as Lambda runs it: its environment is the
one template.yaml gives it and its credentials are those of its role (both set by the caller),
so every AWS call it makes is its own. The handler is loaded once (one execution environment)
and given each step of a JSON list in turn:

- ``{"event": {...}}``: one invocation with that event;
- ``{"drain": "<queue url>"}``: Lambda's SQS event source, with the function's own credentials as
  the mapping has them: receive one message at a time, invoke, delete what succeeded, until the
  queue is empty.

Run as ``python -m tests.integration.iam_function <edit_api|batch_edit|authorizer> <steps.json>
<answers.json>``."""

from __future__ import annotations

import json
import sys
from typing import Any

import boto3

from editgate_local.batch_driver import sqs_event
from editgate_local.front import Handler, LambdaContext, load_handler
from editgate_local.stack import REPO_ROOT

# More than any success path here needs: a loop that does not end is a failure, not a hang.
_MOST_MESSAGES = 100


def drain(handler: Handler, queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    answers: list[dict[str, Any]] = []
    for _ in range(_MOST_MESSAGES):
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=1, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return answers
        answer = handler(sqs_event(messages, queue_arn), LambdaContext("BatchFunction", timeout_seconds=60))
        answers.append(answer)
        if not answer.get("batchItemFailures"):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    raise RuntimeError(f"the queue still had messages after {_MOST_MESSAGES}")


def main(function: str, steps_path: str, answers_path: str) -> None:
    handler = load_handler(REPO_ROOT / "functions" / function / "app.py")
    with open(steps_path) as steps_file:
        steps: list[dict[str, Any]] = json.load(steps_file)
    answers: list[Any] = []
    for step in steps:
        if "drain" in step:
            answers.append(drain(handler, step["drain"]))
        else:
            answers.append(handler(step["event"], LambdaContext(function, timeout_seconds=60)))
    with open(answers_path, "w") as answers_file:
        json.dump(answers, answers_file)


if __name__ == "__main__":
    main(*sys.argv[1:4])
