"""The batch door's rules that need no stack: where a batch may read, where it may write, how its
messages fit SQS, the CLI's ids from file names, and the batch settings."""

from __future__ import annotations

import math

import pytest

from editgate.adapters.queue import SQS_MAX_BYTES, batched_for_sqs, message_body
from editgate.app.batch.layout import ImageRules, output_key
from editgate.settings import Settings, SettingsError
from editgate_local.batch_commands import item_ids

RULES = ImageRules(batch_bucket="batch", source_bucket="catalog")


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        ("batch", "incoming/mine/a.png"),
        ("batch", "incoming/mine/sub/a.png"),
        ("catalog", "any/key.png"),
    ],
)
def test_given_its_own_folder_or_the_source_bucket_then_a_batch_may_read_it(bucket: str, key: str) -> None:
    assert RULES.refusal("mine", bucket, key) is None


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        ("batch", "incoming/victim/private.png"),
        ("batch", "batches/victim/results/v1/0.png"),
        ("batch", "incoming/mine/../victim/private.png"),
        ("batch", "incoming/mine/./a.png"),
        ("batch", "incoming/mine//a.png"),
        ("results", "results/2026/01/01/x/0.png"),
        ("elsewhere", "a.png"),
    ],
)
def test_given_anything_else_then_a_batch_may_not_read_it(bucket: str, key: str) -> None:
    assert RULES.refusal("mine", bucket, key)


def test_given_no_source_bucket_then_the_refusal_says_the_stack_has_none() -> None:
    refusal = ImageRules("batch", None).refusal("mine", "catalog", "a.png")
    assert refusal is not None
    assert "this stack has none" in refusal


def test_given_an_s3_job_then_its_batch_has_no_folder_of_uploads_to_read() -> None:
    assert RULES.refusal("s3job-7", "batch", "incoming/s3job-7/a.png")
    assert RULES.refusal("s3job-7", "catalog", "a.png") is None


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../../escape", "-x", "x y"])
def test_given_a_name_that_is_not_plain_then_no_batch_key_is_made_of_it(name: str) -> None:
    with pytest.raises(ValueError, match="not a name in a batch's folder"):
        output_key("batch", "items", name)
    with pytest.raises(ValueError, match="not a name in a batch's folder"):
        output_key(name, "summary.json")


def test_given_plain_names_then_the_key_is_under_the_batch_folder() -> None:
    assert output_key("b-1", "items", "x~line-2.json") == "batches/b-1/items/x~line-2.json"


def test_given_ten_messages_of_150_kb_then_each_send_carries_what_fits_sqs() -> None:
    bodies = [message_body({"prompt": "p" * 150_000, "n": n}) for n in range(10)]

    calls = list(batched_for_sqs(bodies))

    assert [len(call) for call in calls] == [1] * 10
    assert all(sum(len(entry["MessageBody"]) for entry in call) <= SQS_MAX_BYTES for call in calls)


def test_given_small_messages_then_ten_go_in_one_send() -> None:
    calls = list(batched_for_sqs([message_body({"n": n}) for n in range(25)]))
    assert [len(call) for call in calls] == [10, 10, 5]
    assert [entry["Id"] for entry in calls[2]] == ["0", "1", "2", "3", "4"]


def test_given_a_document_larger_than_sqs_takes_or_not_finite_then_it_is_no_message() -> None:
    with pytest.raises(ValueError, match="more than SQS's 262,144"):
        message_body({"defaults": "x" * SQS_MAX_BYTES})
    with pytest.raises(ValueError, match="not finite"):
        message_body({"seed": math.inf})


def test_given_file_names_that_are_no_ids_then_each_gets_a_valid_unique_one() -> None:
    names = ["_draft.png", "draft.png", "dup.jpg", "dup.png", "a b.png", "a_b.png", "___.webp", "é.png"]

    ids = item_ids(names)

    assert ids["_draft.png"] == "draft"
    assert ids["draft.png"] == "draft-png"
    assert (ids["dup.jpg"], ids["dup.png"]) == ("dup", "dup-png")
    assert (ids["a b.png"], ids["a_b.png"]) == ("a_b", "a_b-png")
    assert ids["___.webp"] == "image"
    assert len(set(ids.values())) == len(names)
    assert all(value[0].isalnum() and len(value) <= 128 for value in ids.values())


def test_given_batch_defaults_and_a_source_bucket_then_the_settings_hold_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from(
        {"BATCH_DEFAULTS": '{"prompt": "marble", "n": 2}', "SOURCE_BUCKET": "cat"}, monkeypatch
    )
    assert settings.batch_defaults == {"prompt": "marble", "n": 2}
    assert settings.source_bucket == "cat"
    unset = settings_from({"BATCH_DEFAULTS": "", "SOURCE_BUCKET": ""}, monkeypatch)
    assert (unset.batch_defaults, unset.source_bucket) == ({}, None)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"BATCH_DEFAULTS": '["prompt"]'}, "BATCH_DEFAULTS"),
        ({"BATCH_DEFAULTS": "prompt=marble"}, "BATCH_DEFAULTS"),
        ({"SOURCE_BUCKET": "bucket"}, "SOURCE_BUCKET must not be the bucket results are written to"),
    ],
)
def test_given_wrong_batch_settings_then_the_cold_start_names_them(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        settings_from(variables, monkeypatch)


def settings_from(variables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings of an environment of exactly the required variables and ``variables``."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in {"RESULTS_BUCKET": "bucket", "FAL_KEY_SECRET_NAME": "fal",
                        "IDEMPOTENCY_TABLE": "idempotency", **variables}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    return Settings.from_env()
