"""The official openai Node SDK against the local stack: what a Node user sees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import REPO_ROOT, LocalStack
from tests.conftest import API_KEY

NODE_DIR = REPO_ROOT / "tests" / "node"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").exists(),
    reason="needs node and `npm ci` in tests/node (make test does it)",
)


@pytest.fixture(scope="module")
def node_results(stack: LocalStack, sample_png_path: Path) -> dict[str, dict[str, object]]:
    env = {**os.environ, "EDITGATE_BASE_URL": f"{stack.base_url}/v1", "EDITGATE_API_KEY": API_KEY,
           "EDITGATE_IMAGE": str(sample_png_path)}  # fmt: skip
    completed = subprocess.run(
        ["node", str(NODE_DIR / "edit.mjs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    return {line["name"]: line for line in lines}


@pytest.fixture(scope="module")
def sample_png_path() -> Path:
    from editgate_local.sample import SAMPLE_IMAGE

    return SAMPLE_IMAGE


@pytest.mark.parametrize("case", ["read stream", "toFile buffer (unknown_file)", "array of files (image[])"])
def test_given_the_node_sdk_when_it_edits_then_images_come_back(
    node_results: dict[str, dict[str, object]], case: str
) -> None:
    result = node_results[case]
    assert result["ok"] is True, result
    assert result["size"] == "768x512"


def test_given_the_node_sdk_and_an_array_with_n_2_then_two_images(
    node_results: dict[str, dict[str, object]],
) -> None:
    assert len(node_results["array of files (image[])"]["data"]) == 2  # type: ignore[arg-type]


def test_given_the_node_sdk_and_a_buffer_then_b64_json_inline(
    node_results: dict[str, dict[str, object]],
) -> None:
    data = node_results["toFile buffer (unknown_file)"]["data"]
    assert data[0]["b64"] > 1000  # type: ignore[index]


def test_given_the_node_sdk_without_a_prompt_then_its_bad_request_error_names_prompt(
    node_results: dict[str, dict[str, object]], emulator: FalEmulator
) -> None:
    result = node_results["missing prompt"]
    assert result["ok"] is False
    assert result["status"] == 400
    assert result["param"] == "prompt"
    assert result["type"] == "BadRequestError"


def test_given_the_node_sdk_then_models_list(node_results: dict[str, dict[str, object]]) -> None:
    assert "hidream-e1-1" in str(node_results["models"]["size"])


def test_given_the_node_sdk_with_stream_true_and_n_2_then_it_iterates_both_images_at_their_size(
    node_results: dict[str, dict[str, object]],
) -> None:
    """Given openai-node's ``images.edit({..., n: 2, stream: true})``, when iterated with
    ``for await``, then two image_edit.completed events, each a PNG of the answer's size (the
    finding "stream=true is refused": it threw a 400)."""
    result = node_results["stream n=2"]
    assert result["ok"] is True, result
    expected = {"type": "image_edit.completed", "size": "768x512", "width": 768, "height": 512, "ignored": []}
    assert result["events"] == [expected, expected]
