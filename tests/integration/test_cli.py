"""The ``editgate`` command as a user runs it (issue 18, "CLI"): each its own process, in an
environment holding no AWS variable, finding a running ``editgate serve`` by the state file it
leaves. One test per finding; no output holds a traceback."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from editgate_local.stack import free_port
from tests.integration.test_serve_command import serving

SERVED_KEY = "sk-cli-served"
COMMANDS = [
    [],
    ["serve"],
    ["edit"],
    ["fal-emulator"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["keys", "webhook-secret"],
    ["batch"],
    ["batch", "run"],
    ["batch", "status"],
    ["batch", "redrive"],
    ["batch", "worker"],
    ["batch", "sample"],
    ["smoke"],
]


def clean_env(cache: Path, **extra: str) -> dict[str, str]:
    """This environment without AWS, fal, OpenAI or editgate variables; its own state folder."""
    dropped = ("AWS_", "FAL_", "OPENAI_", "EDITGATE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return {**env, "XDG_CACHE_HOME": str(cache), "COLUMNS": "80", **extra}


def editgate(*arguments: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``editgate ARGUMENTS``, its output piped (not a terminal); never a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "editgate_local.cli", *arguments],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *phrases: str) -> str:
    """The command failed with ``code`` and said why in one line on stderr."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, done.stdout + done.stderr
    assert len(lines) == 1 or code == 2, done.stderr  # argparse's usage line comes before its error
    for phrase in phrases:
        assert phrase in lines[-1], lines[-1]
    return lines[-1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def served(cache: Path) -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """``editgate serve`` with no AWS variable and ``EDITGATE_API_KEY`` set; the environment the
    other commands get (no AWS variable either)."""
    env = clean_env(cache)
    with serving({**env, "EDITGATE_API_KEY": SERVED_KEY}) as (base_url, lines):
        yield f"{base_url}/v1", lines, env


def test_given_the_keys_command_serve_prints_when_run_as_printed_with_no_aws_variable_then_it_makes_a_key(
    served: tuple[str, list[str], dict[str, str]],
) -> None:
    """Finding: the printed ``editgate keys … create --owner NAME`` died with NoRegionError,
    then NoCredentialsError. Given a running serve and no AWS variable, when run as printed (NAME
    filled in), then it makes a key that the API accepts, and ``keys list --json`` lists it."""
    base_url, lines, env = served
    printed = next(line for line in lines if "keys create" in line)
    command = re.search(r" (keys .*create --owner) NAME", printed)
    assert command is not None, printed

    done = editgate(*command.group(1).split(), "printed-owner", env=env)

    assert done.returncode == 0, done.stderr
    key = re.search(r"key:\s+(\S+)", done.stdout)
    assert key is not None
    models = requests.get(
        f"{base_url}/models", headers={"Authorization": f"Bearer {key.group(1)}"}, timeout=10
    )
    assert models.status_code == 200
    listed = editgate("keys", "list", "--table", "editgate-local-api-keys", "--json", env=env)
    assert "printed-owner" in {row["owner"] for row in json.loads(listed.stdout)}


def test_given_keys_options_after_the_verb_then_they_are_accepted(
    served: tuple[str, list[str], dict[str, str]],
) -> None:
    """Finding: ``editgate keys create --owner x --table t`` failed (``--table`` had to come first)."""
    _, _, env = served
    done = editgate("keys", "create", "--owner", "x", "--table", "editgate-local-api-keys", env=env)
    assert done.returncode == 0, done.stderr
    assert "key id: key_" in done.stdout


def test_given_a_batch_with_a_broken_image_when_run_and_watched_piped_then_exit_3_and_whole_lines(
    served: tuple[str, list[str], dict[str, str]], tmp_path: Path
) -> None:
    """Findings: ``batch run|status --bucket`` needed AWS variables; ``batch run`` exited 0 when
    items failed; piped, rich wrapped URLs at 80 columns and cut the progress line. Given a running
    serve, no AWS variable and a folder with one broken image, when run with --bucket (piped), then
    it exits 3, each URL and progress line is whole, and ``batch status --json`` reads the summary."""
    _, _, env = served
    folder = tmp_path / "photos"
    batch_id = "cli-broken-with-an-id-long-enough-that-its-lines-pass-eighty-columns"
    assert editgate("batch", "sample", str(folder), "--count", "2", env=env).returncode == 0
    (folder / "broken.png").write_bytes(b"not really a png")

    done = editgate("batch", "run", str(folder), "--prompt", "add snow", "--bucket", "editgate-local-batch",
                    "--batch-id", batch_id, env=env)  # fmt: skip

    assert done.returncode == 3, done.stdout + done.stderr
    assert f"results: s3://editgate-local-batch/batches/{batch_id}/results/\n" in done.stdout
    assert re.search(rf"^{batch_id}: 3/3 done · 1 failed · 2 images · \$[\d.]+ · [\d.]+ items/s · \d+ s$",
                     done.stdout, re.MULTILINE), done.stdout  # fmt: skip
    assert re.search(r"^failed: broken\.png \(item broken, line \d+\): invalid_image_format: ", done.stdout,
                     re.MULTILINE), done.stdout  # fmt: skip
    status = editgate("batch", "--bucket", "editgate-local-batch", "status", batch_id, "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"] == {"succeeded": 2, "failed": 1, "pending": 0}


def test_given_no_running_serve_when_a_local_command_runs_then_one_line_says_to_start_one(
    tmp_path: Path,
) -> None:
    env = clean_env(tmp_path)
    for command in (["keys", "--table", "editgate-local-api-keys", "list"], ["batch", "worker"]):
        one_line_error(editgate(*command, env=env), 1, "no running editgate serve found", "editgate serve")


def test_given_a_missing_image_file_when_edit_then_one_line_and_exit_1(tmp_path: Path) -> None:
    done = editgate("edit", str(tmp_path / "nope.png"), "--prompt", "x", env=clean_env(tmp_path))
    one_line_error(done, 1, "image not found", "nope.png")


def test_given_an_unreachable_base_url_when_edit_then_one_line_and_exit_1(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    done = editgate("edit", "--prompt", "x", "--base-url", dead, env=clean_env(tmp_path))
    one_line_error(done, 1, f"cannot reach the API at {dead}", "--base-url")


def test_given_the_port_in_use_when_serve_then_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = editgate("serve", "--port", str(port), env=clean_env(tmp_path))
    one_line_error(done, 1, f"port {port}", "in use", "--port")


def test_given_batch_status_without_stack_or_bucket_then_a_usage_error_exit_2(tmp_path: Path) -> None:
    done = editgate("batch", "status", "foo", env=clean_env(tmp_path))
    one_line_error(done, 2, "--stack NAME", "editgate serve")


def test_given_batch_run_on_a_missing_folder_then_it_says_so_before_any_aws_call(tmp_path: Path) -> None:
    """Finding: a credentials error came before the folder was checked."""
    done = editgate("batch", "run", str(tmp_path / "nope"), "--prompt", "x", "--stack", "editgate",
                    env=clean_env(tmp_path))  # fmt: skip
    one_line_error(done, 1, "no folder", "nope")


def test_given_a_deployed_stack_and_no_aws_region_then_one_line_says_what_to_set(tmp_path: Path) -> None:
    done = editgate("keys", "list", "--stack", "editgate", env=clean_env(tmp_path))
    one_line_error(done, 1, "no AWS region", "AWS_REGION")


def test_given_a_real_fal_key_and_no_network_when_edit_then_it_fails_at_once_saying_so(
    tmp_path: Path,
) -> None:
    """Finding: ``FAL_KEY=dummy`` without a network waited 71 s in silence before a 502. fal
    unreachable here stands for no network."""
    env = clean_env(tmp_path, FAL_KEY="dummy", FAL_QUEUE_URL=f"http://127.0.0.1:{free_port()}")
    done = editgate("edit", "--prompt", "x", "-o", str(tmp_path / "out.png"), env=env)
    one_line_error(done, 1, "cannot reach fal", "unset FAL_KEY")


def test_given_an_invalid_size_then_the_api_error_shows_status_code_and_param_once(tmp_path: Path) -> None:
    """Finding: ``error 400: Error code: 400 - Invalid value for 'size'…``, the prefix doubled."""
    done = editgate("edit", "--prompt", "x", "--size", "7x7", "-o", str(tmp_path / "o.png"),
                    env=clean_env(tmp_path))  # fmt: skip
    line = one_line_error(done, 1, "error: 400 invalid_value (param size): Invalid value for 'size'")
    assert "Error code" not in line


def test_given_the_embedded_stack_when_edit_then_only_the_saved_file_is_shown_not_a_dead_url(
    tmp_path: Path,
) -> None:
    """Finding: the ``url:`` printed was dead when the command ended (the embedded stack gone)."""
    output = tmp_path / "demo.png"
    done = editgate("edit", "--prompt", "x", "-o", str(output), env=clean_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "url:" not in done.stdout
    assert f"saved {output}" in done.stdout
    assert "it stops when this command ends" in done.stdout


def test_given_openai_base_url_and_editgate_api_key_when_edit_then_they_are_used(
    served: tuple[str, list[str], dict[str, str]], tmp_path: Path
) -> None:
    """Findings: ``editgate edit`` ignored ``OPENAI_BASE_URL``; the key's variable had three names.
    Given serve started with ``EDITGATE_API_KEY``, when edit runs with ``OPENAI_BASE_URL`` and the
    same ``EDITGATE_API_KEY``, then it edits through that serve (and ``OPENAI_API_KEY`` works too)."""
    base_url, _, env = served
    for key_variable in ("EDITGATE_API_KEY", "OPENAI_API_KEY"):
        environment = {**env, "OPENAI_BASE_URL": base_url, key_variable: SERVED_KEY}
        done = editgate("edit", "--prompt", "x", "-o", str(tmp_path / "o.png"), env=environment)
        assert done.returncode == 0, done.stderr
        assert f"API:  {base_url}" in done.stdout
        assert "url:  http://" in done.stdout  # a served stack's URL outlives the command


def test_given_serve_then_it_prints_the_playground_and_docs_addresses_that_answer(
    served: tuple[str, list[str], dict[str, str]],
) -> None:
    base_url, lines, _ = served
    root = base_url.removesuffix("/v1")
    for page in ("playground", "docs"):
        assert f"{page}:".ljust(12) + f"{root}/{page}" in lines
    assert requests.get(f"{root}/playground", timeout=10).status_code == 200
    docs = requests.get(f"{root}/docs", headers={"Authorization": f"Bearer {SERVED_KEY}"}, timeout=10)
    assert docs.status_code == 200


def test_given_serve_stops_then_its_state_file_goes_and_local_commands_say_none_runs(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    with serving(env) as (base_url, _):
        state_file = tmp_path / "editgate" / f"serve-{urlsplit(base_url).port}.json"
        state = json.loads(state_file.read_text())
        assert state["base_url"] == f"{base_url}/v1"
    assert not state_file.exists()
    one_line_error(editgate("smoke", env=env), 2, "editgate serve")


def test_given_smoke_against_a_running_serve_then_every_check_passes_and_its_key_is_revoked(
    served: tuple[str, list[str], dict[str, str]],
) -> None:
    """``editgate smoke`` on the local stack as if it were deployed: a temporary key, the health
    route (a 404 tolerated until it exists), the docs, the models, a dry run and a paid edit."""
    _, _, env = served
    done = editgate("smoke", "--paid", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    for check in ("health", "docs", "models", "dry-run edit", "paid edit"):
        assert re.search(rf"^ok +{check}: ", done.stdout, re.MULTILINE), done.stdout
    assert "5 passed, 0 failed" in done.stdout
    listed = json.loads(
        editgate("keys", "list", "--table", "editgate-local-api-keys", "--json", env=env).stdout
    )
    assert {row["state"] for row in listed if row["owner"] == "editgate-smoke"} == {"revoked"}


def test_given_smoke_with_a_wrong_key_then_its_checks_fail_and_it_exits_3(
    served: tuple[str, list[str], dict[str, str]],
) -> None:
    base_url, _, env = served
    done = editgate("smoke", "--base-url", base_url, "--api-key", "sk-wrong", "--key-wait", "0", env=env)
    assert done.returncode == 3, done.stdout + done.stderr
    assert re.search(r"^FAIL  models: GET \S+ answered 401 \S+: \w", done.stdout, re.MULTILINE), done.stdout
    assert "{" not in done.stdout  # the error's fields, not a Python dict


def option_entries(help_text: str) -> list[tuple[str, str]]:
    """Each argument a help lists: its flags (or name) and its help, continuation lines joined."""
    entries: list[list[str]] = []
    listing = False
    for line in help_text.splitlines():
        if line in ("options:", "positional arguments:"):
            listing = True
        elif not line.strip():
            listing = False
        elif listing and re.match(r"  \S", line):
            flags, _, rest = line.strip().partition("  ")
            entries.append([flags, rest.strip()])
        elif listing and entries:
            entries[-1][1] += " " + line.strip()
    return [(flags, text) for flags, text in entries if flags not in ("COMMAND", "VERB")]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "editgate")
def test_given_each_command_then_every_option_has_help_and_shows_its_default(
    command: list[str], tmp_path: Path
) -> None:
    """Finding: many options had no help, no default was shown, no examples."""
    done = editgate(*command, "--help", env=clean_env(tmp_path))
    assert done.returncode == 0
    entries = option_entries(done.stdout)
    assert entries
    for flags, text in entries:
        assert text, f"{flags} has no help"
        if re.match(r"-[\w-]+(, --[\w-]+)? (?:[A-Z]|\{)", flags):  # it takes a value
            assert re.search(r"default|required", text), f"{flags}: {text!r} shows no default"
    if len(command) == 1:
        assert "examples:\n  editgate " in done.stdout


def test_given_the_top_help_and_version_then_no_raw_backticks_and_the_package_version(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    top = editgate("--help", env=env)
    assert "``" not in top.stdout
    assert "`" not in top.stdout
    assert "exit codes: 0 done, 1 error, 2 usage error, 3 finished with failed items" in top.stdout
    assert editgate("--version", env=env).stdout.strip() == f"editgate {version('editgate')}"
