"""Least privilege, proven rather than assumed. The functions' success paths (an HTTPS edit, the
documentation and playground, a manifest batch, a single upload, an S3 Batch Operations task,
the authorizer) and ``editgate keys --stack`` run against a moto of their own with IAM checks on,
each process under the credentials of an IAM user whose policies are its role's statements in
template.yaml (SAM's transform, then the intrinsic functions resolved for this deployment's
names). Every call they make is recorded and also judged by an IAM evaluator
(``@cloud-copilot/iam-simulate``) against the same statements with the call's exact resource.

What moto 5.2.5 checks itself, and so what the evaluator is for: S3 actions and object ARNs
exactly, SQS actions and the queue's ARN. It cannot name DynamoDB, Secrets Manager,
CloudFormation or API Gateway resources (it checks those against ``*``, so a statement naming a
table would deny every call), it names some permissions after the API where IAM does not
(``sqs:SendMessageBatch``, ``dynamodb:TransactWriteItems``; API Gateway's are ``apigateway:POST``
on paths), and it evaluates no condition keys or resource policies (the buckets' TLS-only policy
is left out). So moto holds each statement as written for S3 and SQS (with the batch APIs' names
added), and with ``Resource: *`` for the other services; the evaluator judges every call exactly."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest
import requests
import urllib3
from botocore.exceptions import ClientError

from editgate.settings import KeySettings, Settings, WebhookSettings
from editgate_local.batch_driver import scheduled_event
from editgate_local.fal_emulator import FalEmulator
from editgate_local.fal_webhooks import webhook_body
from editgate_local.front import proxy_event
from editgate_local.stack import REPO_ROOT, batch_notification_filters
from tests.conftest import png_bytes
from tests.template_iam import ACCOUNT, REGION, Deployment, translate

NODE_DIR = REPO_ROOT / "tests" / "node"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None
    or not (NODE_DIR / "node_modules" / "@cloud-copilot" / "iam-simulate").exists(),
    reason="needs node and `npm ci` in tests/node (make test does it)",
)

STACK = "editgate-lp"
SOURCE_BUCKET = "editgate-lp-source"
NAMES = {
    "IdempotencyTable": "lp-edit-idempotency", "BatchIdempotencyTable": "lp-batch-idempotency",
    "ApiKeysTable": "lp-api-keys", "BatchTable": "lp-batch-ledger", "ResultsBucket": "editgate-lp-results",
    "JobsTable": "lp-jobs",
}  # fmt: skip
QUEUES = {"BatchQueue": "lp-batch", "BatchDeadLetterQueue": "lp-batch-dlq",
          "CollectQueue": "lp-collect", "CollectDeadLetterQueue": "lp-collect-dlq"}  # fmt: skip
# Each function's process and the role whose statements its credentials carry.
ROLES = {
    "edit_api": "EditApiFunctionRole",
    "batch_edit": "BatchFunctionRole",
    "authorizer": "AuthorizerFunctionRole",
    "fal_webhook": "FalWebhookFunctionRole",
}
FUNCTIONS = {"edit_api": "EditApiFunction", "batch_edit": "BatchFunction", "authorizer": "AuthorizerFunction",
             "fal_webhook": "FalWebhookFunction"}  # fmt: skip
KEYS_ADMIN = "KeysAdminPolicy"
ADMIN = "lp-admin"
_SETTINGS = {
    name.upper()
    for name in [*Settings.model_fields, *KeySettings.model_fields, *WebhookSettings.model_fields]
}


@dataclass
class Run:
    """What the module's one run of every success path left to look at."""

    url: str
    deployment: Deployment
    keys: dict[str, tuple[str, str]]  # role or policy name -> access key id, secret
    answers: dict[str, list[Any]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    key_id: str = ""
    secret_arn: str = ""

    def client(self, service: str, principal: str = ADMIN) -> Any:
        return aws(service, self.url, *self.keys[principal])

    def statements(self, principal: str) -> list[dict[str, Any]]:
        if principal == KEYS_ADMIN:
            return [self.deployment.managed_policy(KEYS_ADMIN)]
        return self.deployment.policies(principal)


def aws(service: str, url: str, key: str = "setup", secret: str = "setup") -> Any:  # noqa: S107 - moto's
    """A client of the least-privilege moto, signing as ``key`` (any key before IAM checks are on)."""
    factory: Callable[..., Any] = boto3.client
    return factory(
        service, endpoint_url=url, region_name=REGION, aws_access_key_id=key, aws_secret_access_key=secret
    )


@contextlib.contextmanager
def iam_moto() -> Iterator[str]:
    """A moto server process of its own (moto's IAM switch is per process), until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.iam_moto"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    try:
        port = process.stdout.readline().strip()
        assert process.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def moto_statements(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statements as moto can check them (see the module's docstring)."""
    held = []
    for document in documents:
        statements = []
        for statement in document["Statement"]:
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            services = {action.split(":")[0] for action in actions}
            if services <= {"s3", "sqs"}:
                batched = [f"{a}Batch" for a in actions if a in ("sqs:SendMessage", "sqs:DeleteMessage")]
                statements.append({**statement, "Action": actions + batched})
            elif services == {"apigateway"}:
                statements.append({**statement, "Action": "apigateway:*", "Resource": "*"})
            else:
                writes = any(a.endswith(("PutItem", "UpdateItem", "DeleteItem")) for a in actions)
                transact = ["dynamodb:TransactWriteItems"] if writes else []
                statements.append({**statement, "Action": actions + transact, "Resource": "*"})
        held.append({"Version": "2012-10-17", "Statement": statements})
    return held


def clean_environment() -> dict[str, str]:
    """This process's environment less what configures AWS, Powertools, fal or editgate (the
    session's stack exports its own): a function's process gets only its template's."""
    prefixes = ("AWS_", "POWERTOOLS_", "FAL_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k not in _SETTINGS}


def credentials(run: Run, principal: str) -> dict[str, str]:
    key, secret = run.keys[principal]
    return {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION, "AWS_ENDPOINT_URL": run.url}  # fmt: skip


def invoke(run: Run, function: str, steps: list[dict[str, Any]], tmp: Path) -> list[Any]:
    """The function's handler in its own process, its template environment and its role's keys."""
    env = {
        **clean_environment(),
        **run.deployment.environment(FUNCTIONS[function]),
        **credentials(run, ROLES[function]),
        "AWS_LAMBDA_FUNCTION_NAME": f"{STACK}-{FUNCTIONS[function]}",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    steps_path, answers_path = tmp / f"{function}-steps.json", tmp / f"{function}-answers.json"
    steps_path.write_text(json.dumps(steps))
    command = [
        sys.executable,
        "-m",
        "tests.integration.iam_function",
        function,
        str(steps_path),
        str(answers_path),
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    answers: list[Any] = json.loads(answers_path.read_text())
    return answers


def keys_cli(run: Run, *arguments: str) -> str:
    env = {**clean_environment(), **credentials(run, KEYS_ADMIN)}
    completed = subprocess.run(
        [sys.executable, "-m", "editgate_local.cli", "keys", "--stack", STACK, *arguments],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr[-3000:]
    return completed.stdout


def name_resources(deployment: Deployment, queue_urls: dict[str, str]) -> None:
    """What ``!Ref`` and ``Arn`` give for the stack's tables, buckets and queues."""
    batch_bucket = deployment.template["Resources"]["BatchBucket"]["Properties"]["BucketName"]
    buckets = {"ResultsBucket": NAMES["ResultsBucket"], "BatchBucket": deployment.resolve(batch_bucket)}
    for logical, name in NAMES.items():
        if logical.endswith("Table"):
            deployment.names[logical], deployment.arns[logical] = (
                name,
                f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
            )
    for logical, name in buckets.items():
        deployment.names[logical], deployment.arns[logical] = name, f"arn:aws:s3:::{name}"
    for logical, name in QUEUES.items():
        deployment.names[logical], deployment.arns[logical] = (
            queue_urls[logical],
            f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        )


def on_paper(parameters: dict[str, str]) -> Deployment:
    """The deployment's statements with nothing deployed (the names ``run`` gives), for the IAM
    evaluator alone."""
    stack_id = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/6a1f0c2e-0000-4000-8000-000000000000"
    deployment = Deployment(
        translate(parameters), parameters, stack_id, names={"ApiUsagePlan": "plan", "Api": "lpapi"}
    )
    name_resources(deployment, {logical: f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
                                for logical, name in QUEUES.items()})  # fmt: skip
    return deployment


def provision(url: str, emulator: FalEmulator) -> Run:
    """The stack's resources in moto under the names the deployment resolves, the batch inputs,
    and one IAM user per role (its statements as moto can hold them) and one for the keys policy."""
    plan = aws("apigateway", url).create_usage_plan(name=STACK)["id"]
    stack_template = {
        "Resources": {"Marker": {"Type": "AWS::SSM::Parameter",
                                 "Properties": {"Name": "/editgate-lp", "Type": "String", "Value": "lp"}}},
        "Outputs": {"ApiKeysTableName": {"Value": NAMES["ApiKeysTable"]}, "UsagePlanId": {"Value": plan}},
    }  # fmt: skip
    stack_id = aws("cloudformation", url).create_stack(
        StackName=STACK, TemplateBody=json.dumps(stack_template)
    )["StackId"]
    parameters = {"SourceBucketName": SOURCE_BUCKET, "FalQueueUrl": emulator.url, "PublicDocs": "false",
                  "FalJwksUrl": emulator.jwks_url}  # fmt: skip
    deployment = Deployment(
        translate(parameters), parameters, stack_id, names={"ApiUsagePlan": plan, "Api": "lpapi"}
    )
    dynamodb, s3, sqs = (aws(name, url) for name in ("dynamodb", "s3", "sqs"))
    name_resources(
        deployment,
        {logical: sqs.create_queue(QueueName=name)["QueueUrl"] for logical, name in QUEUES.items()},
    )
    tables = deployment.template["Resources"]
    for logical in NAMES:
        if logical.endswith("Table"):
            # As the template declares it (the jobs' table has its index).
            declared = tables[logical]["Properties"]
            dynamodb.create_table(
                TableName=deployment.names[logical],
                KeySchema=declared["KeySchema"],
                AttributeDefinitions=declared["AttributeDefinitions"],
                BillingMode="PAY_PER_REQUEST",
                **({"GlobalSecondaryIndexes": declared["GlobalSecondaryIndexes"]}
                   if "GlobalSecondaryIndexes" in declared else {}),
            )  # fmt: skip
    for logical in ("ResultsBucket", "BatchBucket"):
        s3.create_bucket(Bucket=deployment.names[logical])
    secret = aws("secretsmanager", url).create_secret(
        Name=deployment.environment("EditApiFunction")["FAL_KEY_SECRET_NAME"], SecretString=emulator.key
    )
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    keys = {ADMIN: _user(url, ADMIN, [everything])}
    for role in ROLES.values():
        keys[role] = _user(url, role, moto_statements(deployment.policies(role)))
    keys[KEYS_ADMIN] = _user(url, KEYS_ADMIN, moto_statements([deployment.managed_policy(KEYS_ADMIN)]))
    _batch_inputs(s3, deployment.names["BatchBucket"], deployment.arns["BatchQueue"])
    return Run(url, deployment, keys, secret_arn=secret["ARN"])


def _user(url: str, name: str, documents: list[dict[str, Any]]) -> tuple[str, str]:
    iam = aws("iam", url)
    iam.create_user(UserName=name)
    for index, document in enumerate(documents):
        iam.put_user_policy(UserName=name, PolicyName=f"policy{index}", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def _batch_inputs(s3: Any, batch_bucket: str, queue_arn: str) -> None:
    """The bucket's notifications as the template declares them, a manifest with its image, a
    single upload named as a camera names it, and a versioned object of the source bucket."""
    s3.put_bucket_notification_configuration(
        Bucket=batch_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
                 "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix},
                                                    {"Name": "suffix", "Value": suffix}]}}}
                for prefix, suffix in batch_notification_filters()
            ]
        },
    )  # fmt: skip
    s3.put_object(Bucket=batch_bucket, Key="incoming/lp1/a.png", Body=png_bytes((64, 48)))
    manifest = json.dumps({"id": "a", "image": "a.png", "prompt": "add snow"}) + "\n"
    s3.put_object(Bucket=batch_bucket, Key="incoming/lp1/manifest.jsonl", Body=manifest.encode())
    s3.put_object(
        Bucket=batch_bucket,
        Key="incoming/single/IMG_0001.JPG",
        Body=png_bytes((64, 48)),
        Metadata={"prompt": "fog"},
    )
    s3.create_bucket(Bucket=SOURCE_BUCKET)
    s3.put_bucket_versioning(Bucket=SOURCE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/shoe.png", Body=png_bytes((64, 48)))


def _edit_event(key_id: str, fields: dict[str, str], headers: dict[str, str] | None = None) -> dict[str, Any]:
    body, content_type = urllib3.encode_multipart_formdata(
        {"image": ("image.png", png_bytes((64, 48)), "image/png"), "prompt": "add snow", **fields}
    )
    return proxy_event(
        "POST", "/v1/images/edits", [("Content-Type", content_type), *(headers or {}).items()], body,
        authorizer={"principalId": key_id, "key_id": key_id, "owner": "lp"},
    )  # fmt: skip


def _job_event(key_id: str, method: str, path: str) -> dict[str, Any]:
    authorizer = {"principalId": key_id, "key_id": key_id, "owner": "lp"}
    return proxy_event(method, path, [], b"", authorizer=authorizer)


def _webhook_event(emulator: FalEmulator, request_id: str) -> dict[str, Any]:
    body = webhook_body(request_id, 200, {"images": [{"url": "https://v3.fal.media/files/x.png"}]})
    headers = [
        *emulator.webhooks.signer.headers(request_id, body).items(),
        ("Content-Type", "application/json"),
    ]
    return proxy_event("POST", "/v1/fal/webhook", headers, body)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("least-privilege")
    emulator = FalEmulator().start()
    try:
        with iam_moto() as url:
            done = provision(url, emulator)
            requests.post(f"{url}/moto-api/reset-auth", data="0", timeout=10).raise_for_status()  # checks on
            requests.delete(f"{url}/_recorded", timeout=10)

            created = keys_cli(done, "create", "--owner", "lp")
            key = created.split("key:", 1)[1].split()[0]
            done.key_id = created.split("key id:", 1)[1].split()[0]
            authorizer = proxy_event("GET", "/v1/models", [("Authorization", f"Bearer {key}")], b"")
            authorizer.update(
                type="REQUEST", methodArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:lp/api/GET/v1/models"
            )
            done.answers["authorizer"] = invoke(done, "authorizer", [{"event": authorizer}], tmp)
            done.answers["edit_api"] = invoke(done, "edit_api", [
                {"event": _edit_event(done.key_id, {})},
                {"event": _edit_event(done.key_id, {"response_format": "b64_json", "seed": "3"})},
                {"event": proxy_event("GET", "/docs", [("Authorization", f"Bearer {key}")], b"")},
                {"event": proxy_event("GET", "/playground", [], b"")},
                # Two jobs: one run by the batch function below, one cancelled before it starts.
                {"event": _edit_event(done.key_id, {}, {"Prefer": "respond-async"})},
                {"event": _edit_event(done.key_id, {"seed": "4"}, {"Prefer": "respond-async"})},
            ], tmp)  # fmt: skip
            ran, cancelled = (json.loads(answer["body"])["id"] for answer in done.answers["edit_api"][4:6])
            done.answers["jobs"] = invoke(done, "edit_api", [
                {"event": _job_event(done.key_id, "DELETE", f"/v1/images/edits/jobs/{cancelled}")},
                {"event": _job_event(done.key_id, "GET", "/v1/images/edits/jobs")},
            ], tmp)  # fmt: skip
            version = done.client("s3").head_object(Bucket=SOURCE_BUCKET, Key="catalog/shoe.png")["VersionId"]
            task = {
                "taskId": "t1",
                "s3Key": "catalog/shoe.png",
                "s3VersionId": version,
                "s3Bucket": SOURCE_BUCKET,
            }
            operations = {"invocationSchemaVersion": "2.0", "invocationId": "i1", "tasks": [task],
                          "job": {"id": "job1", "userArguments": {"prompt": "on a table"}}}  # fmt: skip
            done.answers["batch_edit"] = invoke(
                done,
                "batch_edit",
                [{"drain": done.deployment.names["BatchQueue"]}, {"event": operations}],
                tmp,
            )
            # fal's webhooks about the batch's and the job's requests (journaled by the batch
            # function), the first twice; then the collect steps they queued, and the sweeper's
            # schedule. (They are the last four: the HTTPS edits' are journaled in their own table.)
            webhooks = [_webhook_event(emulator, request_id) for request_id in emulator.request_ids[-4:]]
            done.answers["fal_webhook"] = invoke(
                done, "fal_webhook", [{"event": e} for e in [webhooks[0], *webhooks]], tmp
            )
            done.answers["collect"] = invoke(
                done,
                "batch_edit",
                [{"drain": done.deployment.names["CollectQueue"]}, {"event": scheduled_event()}],
                tmp,
            )
            # The job, ended by its collect step.
            done.answers["jobs"] += invoke(
                done,
                "edit_api",
                [{"event": _job_event(done.key_id, "GET", f"/v1/images/edits/jobs/{ran}")}],
                tmp,
            )
            done.answers["keys"] = [keys_cli(done, "list"), keys_cli(done, "revoke", done.key_id)]
            done.calls = requests.get(f"{url}/_recorded", timeout=10).json()
            yield done
    finally:
        emulator.stop()


def test_given_the_template_statements_when_every_success_path_runs_then_each_succeeds(run: Run) -> None:
    [authorizer] = run.answers["authorizer"]
    assert authorizer["principalId"] == run.key_id
    assert authorizer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    edit, inline, docs, playground, *jobs = run.answers["edit_api"]
    assert [answer["statusCode"] for answer in (edit, inline, docs, playground)] == [200, 200, 200, 200]
    assert [answer["statusCode"] for answer in jobs] == [202, 202]
    assert json.loads(edit["body"])["data"][0]["url"]
    assert json.loads(inline["body"])["data"][0]["b64_json"]
    drained, operations = run.answers["batch_edit"]
    assert all(answer == {"batchItemFailures": []} for answer in drained)
    assert operations["results"][0]["resultCode"] == "Succeeded", operations
    s3, bucket = run.client("s3"), run.deployment.names["BatchBucket"]
    states = {
        item["Key"]: json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())["state"]
        for item in s3.list_objects_v2(Bucket=bucket, Prefix="batches/")["Contents"]
        if "/items/" in item["Key"]
    }
    collected, swept = run.answers["collect"]
    assert all(answer == {"batchItemFailures": []} for answer in collected)
    assert len(collected) == 4  # the manifest's, the upload's, the task's and the job's request
    assert swept == {"queued": 0}  # every webhook came
    assert sorted(states.values()) == ["succeeded"] * 3, states  # the manifest's, the upload's, the task's
    assert any(key.startswith("batches/single/items/IMG_0001-") for key in states)
    # The results' presigned URLs carry the batch role's authority: it may read each result.
    record = json.loads(s3.get_object(Bucket=bucket, Key="batches/lp1/items/a.json")["Body"].read())
    as_batch = run.client("s3", "BatchFunctionRole")
    assert as_batch.get_object(Bucket=bucket, Key=record["results"][0]["key"])["Body"].read()
    assert "revoked" in run.answers["keys"][1]
    cancel, listed, read = run.answers["jobs"]
    assert [a["statusCode"] for a in (cancel, listed, read)] == [200, 200, 200]
    assert json.loads(cancel["body"])["status"] == "cancelled"
    assert len(json.loads(listed["body"])["data"]) == 2
    result = json.loads(read["body"])
    assert result["status"] == "succeeded", result
    # Its URL is presigned as the edit role (moto checks no presigned URL): that role may read it.
    bucket_name, _, image_key = (
        unquote(urlsplit(result["result"]["data"][0]["url"]).path).lstrip("/").partition("/")
    )
    assert (
        run.client("s3", "EditApiFunctionRole").get_object(Bucket=bucket_name, Key=image_key)["Body"].read()
    )
    taken, again, *others = run.answers["fal_webhook"]
    assert [answer["statusCode"] for answer in (taken, again, *others)] == [200] * 5
    assert [json.loads(a["body"])["duplicate"] for a in (taken, again, *others)] == [
        False,
        True,
        False,
        False,
        False,
    ]


def test_given_the_template_statements_when_every_success_path_runs_then_moto_denies_no_call(
    run: Run,
) -> None:
    principals = {key: name for name, (key, _) in run.keys.items() if name != ADMIN}
    theirs = [call for call in run.calls if call["access_key"] in principals]
    assert {principals[call["access_key"]] for call in theirs} == {*ROLES.values(), KEYS_ADMIN}
    assert [call for call in theirs if call["denied"]] == []


def test_given_the_template_statements_then_iam_allows_every_call_the_functions_and_the_keys_cli_made(
    run: Run,
) -> None:
    principals = {key: name for name, (key, _) in run.keys.items() if name != ADMIN}
    requests_ = [
        (principals[call["access_key"]], action, resource, iam_context(call))
        for call in run.calls
        if call["access_key"] in principals
        for action, resource in iam_actions(call, run)
    ]
    decisions = simulate(
        (run.statements(who), action, resource, context) for who, action, resource, context in requests_
    )

    judged = zip(requests_, decisions, strict=True)
    refused = [(request, decision) for request, decision in judged if decision["result"] != "Allowed"]
    assert refused == []
    made = {(who, action) for who, action, _, _ in requests_}
    # The calls each path is known to make were all seen and judged.
    assert {
        ("EditApiFunctionRole", "s3:PutObject"), ("EditApiFunctionRole", "s3:GetObject"),
        ("EditApiFunctionRole", "dynamodb:PutItem"), ("EditApiFunctionRole", "dynamodb:UpdateItem"),
        ("EditApiFunctionRole", "secretsmanager:GetSecretValue"), ("EditApiFunctionRole", "dynamodb:GetItem"),
        ("AuthorizerFunctionRole", "dynamodb:GetItem"),
        ("BatchFunctionRole", "s3:GetObject"),
        ("BatchFunctionRole", "s3:PutObject"), ("BatchFunctionRole", "sqs:SendMessage"),
        ("BatchFunctionRole", "sqs:ReceiveMessage"), ("BatchFunctionRole", "sqs:DeleteMessage"),
        ("BatchFunctionRole", "dynamodb:UpdateItem"), ("BatchFunctionRole", "secretsmanager:GetSecretValue"),
        ("BatchFunctionRole", "dynamodb:PutItem"),  # the journal's falreq# lookups
        ("EditApiFunctionRole", "dynamodb:Query"), ("EditApiFunctionRole", "sqs:SendMessage"),
        ("FalWebhookFunctionRole", "dynamodb:GetItem"), ("FalWebhookFunctionRole", "dynamodb:PutItem"),
        ("FalWebhookFunctionRole", "sqs:SendMessage"),
        ("BatchFunctionRole", "dynamodb:Query"),  # the sweeper's pending index
        (KEYS_ADMIN, "cloudformation:DescribeStacks"), (KEYS_ADMIN, "apigateway:POST"),
        (KEYS_ADMIN, "dynamodb:PutItem"), (KEYS_ADMIN, "dynamodb:Scan"),
    } <= made  # fmt: skip


def test_given_the_batch_functions_credentials_when_it_writes_under_incoming_then_access_is_denied(
    run: Run,
) -> None:
    """The trigger prefix is out of the batch function's reach (moto enforces S3 exactly)."""
    s3 = run.client("s3", "BatchFunctionRole")
    bucket = run.deployment.names["BatchBucket"]

    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket=bucket, Key="incoming/evil/manifest.jsonl", Body=b"{}")

    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    s3.put_object(Bucket=bucket, Key="batches/lp1/allowed.json", Body=b"{}")  # its own prefix: allowed


def test_given_the_batch_functions_credentials_then_other_prefixes_buckets_and_queues_are_denied(
    run: Run,
) -> None:
    s3, sqs = run.client("s3", "BatchFunctionRole"), run.client("sqs", "BatchFunctionRole")
    bucket = run.deployment.names["BatchBucket"]
    denied: list[Callable[[], object]] = [
        lambda: s3.get_object(Bucket=bucket, Key="batches/lp1/items/a.json"),  # records are the CLI's
        lambda: s3.get_object(Bucket=run.deployment.names["ResultsBucket"], Key="results/x.png"),
        lambda: sqs.receive_message(QueueUrl=run.deployment.names["BatchDeadLetterQueue"]),
    ]
    for index, attempt in enumerate(denied):
        with pytest.raises(ClientError) as caught:
            attempt()
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, (
            index,
            caught.value.response,
        )


def test_given_each_functions_statements_then_the_others_idempotency_records_are_out_of_reach() -> None:
    """Issue 15: the edit and batch functions shared one idempotency table, with full read and
    delete of each other's records and journals. The edit function reads the batch journal (a
    job's cancel finds its fal requests there), and nothing else of that table, and writes none."""
    deployment = on_paper({})
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
    edit = table + deployment.environment("EditApiFunction")["IDEMPOTENCY_TABLE"]
    batch = table + deployment.environment("BatchFunction")["IDEMPOTENCY_TABLE"]
    items = ("editgate-lp-Function.edit#0a1b", "journal#0a1b", "falreq#r1")

    decisions = simulate(
        (deployment.policies(role), f"dynamodb:{action}", other, {"dynamodb:LeadingKeys": [item]})
        for role, other in (("BatchFunctionRole", edit), ("EditApiFunctionRole", batch))
        for action in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")
        for item in items
    )

    allowed = [index for index, decision in enumerate(decisions) if decision["result"] == "Allowed"]
    # Only the edit role's GetItem of a journal# item: the batch role's 12 requests come first.
    assert allowed == [12 + 1]


def test_given_the_batch_role_then_it_may_receive_and_delete_on_its_own_queue_only() -> None:
    """Issue 15: SAM's AWSLambdaSQSQueueExecutionRole gave the batch role receive and delete on
    every queue of the account."""
    deployment = on_paper({})
    statements = deployment.policies("BatchFunctionRole")
    own, other = deployment.arns["BatchQueue"], f"arn:aws:sqs:{REGION}:{ACCOUNT}:someone-elses-queue"

    decisions = simulate(
        (statements, f"sqs:{action}", queue)
        for queue in (own, other, deployment.arns["BatchDeadLetterQueue"])
        for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
    )

    assert [d["result"] for d in decisions] == ["Allowed"] * 3 + ["ImplicitlyDenied"] * 6


def test_given_public_docs_then_the_edit_function_may_not_read_the_keys_table() -> None:
    """Issue 15: the edit function could read the keys table even with PublicDocs=true. It reads
    the keys' webhook secrets (a job's callback_url needs one), and no key's record."""
    public, private = on_paper({"PublicDocs": "true"}), on_paper({"PublicDocs": "false"})
    keys_table = private.arns["ApiKeysTable"]
    record, secret = (
        {"dynamodb:LeadingKeys": ["9f86d081884c7d65"]},
        {"dynamodb:LeadingKeys": ["webhook#key_1"]},
    )

    decisions = simulate(
        (deployment.policies("EditApiFunctionRole"), "dynamodb:GetItem", keys_table, item)
        for deployment in (public, private)
        for item in (record, secret)
    )

    assert [d["result"] for d in decisions] == ["ImplicitlyDenied", "Allowed", "Allowed", "Allowed"]


def test_given_the_batch_statements_then_it_reads_the_keys_webhook_secrets_and_no_key_record() -> None:
    """The batch function signs jobs' callbacks with their keys' secrets: it may read those items
    of the keys' table and nothing else of it."""
    deployment = on_paper({})
    keys_table, statements = deployment.arns["ApiKeysTable"], deployment.policies("BatchFunctionRole")
    cases = {("GetItem", "webhook#key_1"): "Allowed", ("GetItem", "9f86d081884c7d65"): "ImplicitlyDenied",
             ("PutItem", "webhook#key_1"): "ImplicitlyDenied"}  # fmt: skip

    decisions = simulate(
        (statements, f"dynamodb:{action}", keys_table, {"dynamodb:LeadingKeys": [item]})
        for action, item in cases
    )

    assert dict(zip(cases, (d["result"] for d in decisions), strict=True)) == cases


def test_given_the_batch_statements_then_it_reads_incoming_and_results_and_writes_only_batches() -> None:
    """Issue 15: the batch role had GetObject and PutObject on the whole batch bucket, so it could
    write the incoming/ trigger prefix and read every batch's records."""
    deployment = on_paper({})
    statements, bucket = deployment.policies("BatchFunctionRole"), deployment.arns["BatchBucket"]
    cases = {
        ("s3:GetObject", "incoming/b1/a.png"): "Allowed",
        ("s3:GetObject", "batches/b1/results/a/0.png"): "Allowed",  # presigned as this role
        ("s3:PutObject", "batches/b1/items/a.json"): "Allowed",
        ("s3:PutObject", "incoming/b2/manifest.jsonl"): "ImplicitlyDenied",
        ("s3:GetObject", "batches/b2/items/a.json"): "ImplicitlyDenied",
        ("s3:GetObject", "batches/b2/summary.json"): "ImplicitlyDenied",
        ("s3:DeleteObject", "incoming/b1/a.png"): "ImplicitlyDenied",
    }

    decisions = simulate((statements, action, f"{bucket}/{key}") for action, key in cases)

    assert dict(zip(cases, (d["result"] for d in decisions), strict=True)) == cases


def iam_actions(call: dict[str, Any], run: Run) -> list[tuple[str, str]]:
    """The IAM actions and resources one recorded call is authorised by."""
    service, params = call["service"], call.get("params") or {}
    operation = (call["target"] or "").rsplit(".", 1)[-1]
    if service == "dynamodb":
        table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
        if operation == "TransactWriteItems":
            kinds = {
                "Update": "UpdateItem",
                "Put": "PutItem",
                "Delete": "DeleteItem",
                "ConditionCheck": "ConditionCheckItem",
            }
            return [(f"dynamodb:{kinds[kind]}", table + spec["TableName"])
                    for item in params["TransactItems"] for kind, spec in item.items()]  # fmt: skip
        index = f"/index/{params['IndexName']}" if "IndexName" in params else ""
        return [(f"dynamodb:{operation}", table + params["TableName"] + index)]
    if service == "secretsmanager":
        return [(f"secretsmanager:{operation}", run.secret_arn)]
    if service == "sqs":
        name = params.get("QueueName") or params["QueueUrl"].rsplit("/", 1)[-1]
        return [(f"sqs:{operation.removesuffix('Batch')}", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")]
    if service == "cloudformation":
        assert params["StackName"] in (STACK, run.deployment.stack_id)
        return [(f"cloudformation:{params['Action']}", run.deployment.stack_id)]
    if service == "apigateway":
        return [(f"apigateway:{call['method']}", f"arn:aws:apigateway:{REGION}::{call['path']}")]
    if service == "s3":
        bucket, _, key = unquote(call["path"]).lstrip("/").partition("/")
        query = parse_qs(call["query"])
        if not key:
            return [("s3:ListBucket", f"arn:aws:s3:::{bucket}")]
        versioned = "versionId" in query and call["method"] in ("GET", "HEAD")
        action = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject"}[call["method"]]
        return [(f"s3:{action}Version" if versioned else f"s3:{action}", f"arn:aws:s3:::{bucket}/{key}")]
    raise AssertionError(f"a call this test cannot name the permission of: {call}")


def iam_context(call: dict[str, Any]) -> dict[str, list[str]]:
    """The condition keys a recorded call carries: a DynamoDB item call's partition key
    (``dynamodb:LeadingKeys``), which the statements limited to some items are judged by."""
    params = call.get("params") or {}
    item = params.get("Key") or params.get("Item") or {}
    if call["service"] != "dynamodb" or "id" not in item:
        return {}
    return {"dynamodb:LeadingKeys": [item["id"]["S"]]}


Request = tuple[list[dict[str, Any]], str, str] | tuple[list[dict[str, Any]], str, str, dict[str, list[str]]]


def simulate(requests_: Iterable[Request]) -> list[dict[str, str]]:
    """IAM's decision for each (policy documents, action, resource[, condition keys]), from the
    evaluator."""
    payload = [
        {"policies": [{"Version": "2012-10-17", **document} for document in request[0]],
         "action": request[1], "resource": request[2], "context": request[3] if len(request) > 3 else {},
         "principal": f"arn:aws:iam::{ACCOUNT}:role/editgate", "account": ACCOUNT}
        for request in requests_
    ]  # fmt: skip
    completed = subprocess.run(
        ["node", str(NODE_DIR / "iam_simulate.mjs")],
        input=json.dumps(payload), capture_output=True, text=True, timeout=120, check=False, cwd=NODE_DIR,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    decisions: list[dict[str, str]] = json.loads(completed.stdout)
    return decisions
