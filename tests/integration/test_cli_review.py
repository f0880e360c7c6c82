"""The ``editgate`` command after a newcomer's review (issue 18, the review's CLI findings): each
finding a test, run as a user runs it (its own process, no AWS, fal, OpenAI or editgate
variable), no traceback in any output."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from editgate_local.stack import free_port
from tests.integration.test_cli import clean_env, editgate, one_line_error
from tests.integration.test_serve_command import until_ready

SAMPLE = Path(__file__).parents[2] / "local" / "editgate_local" / "sample.png"
VENV_EDITGATE = Path(sys.executable).with_name("editgate")  # the console script pip installed
APP_ORIGIN = "http://app.example"


@contextlib.contextmanager
def running(
    command: list[str], env: dict[str, str], cwd: Path | None = None
) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """A long-running ``editgate`` command, ready; what it printed, start to end, holds no traceback."""
    with until_ready(command, env, cwd) as (process, lines):
        yield process, lines
    assert "Traceback" not in "\n".join(lines), "\n".join(lines)


def serve_command(port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "editgate_local.cli", "serve", "--port", str(port), *options]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def serve(cache: Path) -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """A running ``editgate serve`` (allowing CORS for one origin); the environment the other
    commands get: no AWS variable, the same state folder."""
    env = clean_env(cache)
    port = free_port()
    with running(serve_command(port, "--cors-origin", APP_ORIGIN), env) as (_, lines):
        yield f"http://127.0.0.1:{port}/v1", lines, env


def test_given_editgate_is_not_on_path_when_serve_then_the_commands_it_prints_run_as_printed(
    tmp_path: Path,
) -> None:
    """Finding 1: ``editgate`` is not on PATH in a new shell, yet serve printed bare ``editgate``.
    Given the venv's script run by its path from the project folder, PATH without the venv, when
    serve starts, then it prints ``.venv/bin/editgate keys create …``, which works as printed."""
    if not VENV_EDITGATE.exists():
        pytest.skip(f"no console script at {VENV_EDITGATE} (not a venv install)")
    project = VENV_EDITGATE.parents[2]
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != VENV_EDITGATE.parent)
    env = clean_env(tmp_path, PATH=path)
    relative = str(VENV_EDITGATE.relative_to(project))
    with running([relative, "serve", "--port", str(free_port())], env, cwd=project) as (_, lines):
        printed = next(line for line in lines if "keys create" in line)
        command = re.search(rf"({re.escape(relative)} keys create --owner) NAME", printed)
        assert command is not None, printed
        assert any(f'{relative} batch run DIR --prompt "..."' in line for line in lines), lines
        done = subprocess.run(
            [*command.group(1).split(), "new-shell"], capture_output=True, text=True, env=env, cwd=project
        )
    assert done.returncode == 0, done.stderr
    assert "owner:  new-shell" in done.stdout


def test_given_a_running_serve_when_batch_worker_then_it_starts_with_the_serves_settings(
    serve: tuple[str, list[str], dict[str, str]],
) -> None:
    """Finding 2: ``editgate batch worker`` against a running serve died with a SettingsError
    traceback (FAL_KEY_SECRET_NAME, IDEMPOTENCY_TABLE). Given a serve, when the worker starts,
    then it says ready (and stops without a traceback)."""
    _, _, env = serve
    command = [sys.executable, "-m", "editgate_local.cli", "batch", "worker", "--concurrency", "1"]
    with running(command, env) as (process, _):
        assert process.poll() is None


def test_given_two_serves_when_the_second_stops_then_the_first_is_still_found_and_stale_files_are_ignored(
    serve: tuple[str, list[str], dict[str, str]], cache: Path
) -> None:
    """Finding 5: one state file for every serve: a second serve overwrote it and its exit
    deleted it while the first still ran. Given a serve, a second on another port, and a file
    left by a serve that died (newer than both), when the second stops, then the first's file is
    still there and ``keys list`` reaches it."""
    base_url, _, env = serve
    first_state = cache / "editgate" / f"serve-{base_url.split(':')[2].split('/')[0]}.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    stale = cache / "editgate" / "serve-1.json"
    stale.write_text(json.dumps({"pid": int(dead.stdout), "started": 9e99, "aws_endpoint_url": "http://x"}))
    second_port = free_port()
    with running(serve_command(second_port), env):
        assert (cache / "editgate" / f"serve-{second_port}.json").exists()
        assert first_state.exists()
    assert not (cache / "editgate" / f"serve-{second_port}.json").exists()
    assert first_state.exists()
    listed = editgate("keys", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert {row["owner"] for row in json.loads(listed.stdout)} >= {"local-0"}


def test_given_a_running_serve_when_keys_and_batch_run_without_table_or_bucket_then_they_use_it(
    serve: tuple[str, list[str], dict[str, str]], tmp_path: Path
) -> None:
    """Finding 6: the help said keys/batch find a running serve by themselves, but ``keys create
    --owner carol`` and ``batch status ID`` asked for --table/--bucket, ``batch run`` started a
    stack of its own. Given a serve, when they run without --table/--bucket, then they use it."""
    base_url, _, env = serve
    created = editgate("keys", "create", "--owner", "carol", env=env)
    assert created.returncode == 0, created.stderr
    key = re.search(r"key:\s+(\S+)", created.stdout)
    assert key is not None
    answer = requests.get(f"{base_url}/models", headers={"Authorization": f"Bearer {key[1]}"}, timeout=10)
    assert answer.status_code == 200

    folder = tmp_path / "photos"
    assert editgate("batch", "sample", str(folder), "--count", "1", env=env).returncode == 0
    done = editgate("batch", "run", str(folder), "--prompt", "add snow", "--batch-id", "found", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"on the running editgate serve at {base_url}" in done.stdout
    assert "results: s3://editgate-local-batch/batches/found/results/" in done.stdout
    assert "1 image ·" in done.stdout  # not "1 images"
    status = editgate("batch", "status", "found", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"]["succeeded"] == 1


def test_given_a_wrong_bucket_or_table_then_a_usage_error_naming_the_local_one(
    serve: tuple[str, list[str], dict[str, str]], tmp_path: Path
) -> None:
    """Finding 6: ``--bucket wrong-bucket`` was silently ignored; ``keys --table wrongtable list``
    said ``AWS refused: ResourceNotFoundException`` with no name or hint."""
    _, _, env = serve
    (tmp_path / "a.png").write_bytes(SAMPLE.read_bytes())
    wrong_bucket = editgate(
        "batch", "run", str(tmp_path), "--prompt", "x", "--bucket", "wrong-bucket", env=env
    )
    one_line_error(wrong_bucket, 2, "--bucket wrong-bucket", "editgate-local-batch")
    wrong_table = editgate("keys", "--table", "wrongtable", "list", env=env)
    one_line_error(wrong_table, 2, "--table wrongtable", "editgate-local-api-keys")


def test_given_the_embedded_stack_when_batch_run_then_the_results_are_kept_in_a_local_folder(
    tmp_path: Path,
) -> None:
    """Finding 7: on the embedded stack, ``results: s3://…`` named a bucket gone when the command
    ended, and nothing was kept; a --timeout said ``batch status`` would show it later. Given no
    serve, when batch run ends, then the results are copied under out/ and no s3:// URL is shown;
    when it times out, then it says the batch is gone with the stack."""
    env = clean_env(tmp_path)
    folder = tmp_path / "photos"
    assert editgate("batch", "sample", str(folder), "--count", "2", env=env).returncode == 0
    command = [sys.executable, "-m", "editgate_local.cli", "batch", "run", str(folder), "--prompt", "x"]

    done = subprocess.run([*command, "--batch-id", "kept"], capture_output=True, text=True, env=env,
                          cwd=tmp_path)  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert "s3://" not in done.stdout
    assert "copied 2 result(s) to out/batch-kept/" in done.stdout
    kept = sorted((tmp_path / "out" / "batch-kept").rglob("*.png"))
    assert len(kept) == 2
    timed_out = subprocess.run([*command, "--timeout", "0.001"], capture_output=True, text=True, env=env,
                               cwd=tmp_path)  # fmt: skip
    line = one_line_error(timed_out, 1, "did not finish", "stops now")
    assert "batch status" not in line


@pytest.mark.parametrize(
    "arguments",
    [
        ["serve", "--port", "99999"],
        ["fal-emulator", "--port", "70000"],
        ["edit", "--prompt", "x", "--base-url", "http://127.0.0.1:99999/v1"],
        ["batch", "run", ".", "--prompt", "x", "--concurrency", "0"],
        ["batch", "run", ".", "--prompt", "x", "--param", "size"],
        ["keys", "create", "--owner", "x", "--expires-days", "-5"],
        ["keys", "create", "--owner", ""],
        ["batch", "sample", "photos", "--count", "-3"],
        ["edit", "--prompt", "x", "-o", "out/x.gif"],
    ],
    ids=lambda arguments: " ".join(arguments),
)
def test_given_an_out_of_range_or_malformed_option_then_a_usage_error_exit_2(
    arguments: list[str], tmp_path: Path
) -> None:
    """Findings 8, 9, 12, 13 and the smaller ones: ports out of range were OverflowError and
    ValueError tracebacks; ``--concurrency 0`` hung for an hour; ``--param size`` sent size='';
    negative days and counts, an empty owner were accepted; -o x.gif saved a PNG. Each is now a
    usage error (exit 2) naming the option, before anything runs."""
    done = editgate(*arguments, env=clean_env(tmp_path))
    line = one_line_error(done, 2)
    assert re.search(r"argument (--|-o)|-o out/x\.gif", line), line
    assert not (tmp_path / "photos").exists()


def test_given_an_empty_folder_when_batch_run_then_a_usage_error(tmp_path: Path) -> None:
    done = editgate("batch", "run", str(tmp_path), "--prompt", "x", env=clean_env(tmp_path / "cache"))
    one_line_error(done, 2, "no images in", "editgate batch sample")


def test_given_a_folder_when_edit_then_it_says_it_is_a_folder(tmp_path: Path) -> None:
    done = editgate("edit", str(tmp_path), "--prompt", "x", env=clean_env(tmp_path))
    one_line_error(done, 1, f"{tmp_path} is a folder", "editgate batch run")


def test_given_an_output_named_jpg_when_edit_then_the_saved_file_is_a_jpeg(tmp_path: Path) -> None:
    """Finding 12: ``editgate edit … -o out/x.jpg`` saved a PNG under a .jpg name."""
    output = tmp_path / "x.jpg"
    done = editgate("edit", "--prompt", "x", "-o", str(output), env=clean_env(tmp_path))
    assert done.returncode == 0, done.stderr
    with Image.open(output) as saved:
        assert saved.format == "JPEG"
    assert "jpeg)" in done.stdout


def test_given_a_client_that_disconnects_early_then_serve_prints_no_traceback(
    serve: tuple[str, list[str], dict[str, str]], cache: Path
) -> None:
    """Finding 8: ``curl … | head -2`` (or a browser leaving) made serve print a socketserver
    ``ConnectionResetError`` traceback. Given a second serve (its output read to the end), when
    clients reset their connections mid-answer, then it prints no traceback (``running`` checks)
    and still answers."""
    _, _, env = serve
    port = free_port()
    with running(serve_command(port), env):
        for request in [b"GET /docs HTTP/1.1\r\nHost: x\r\n", b"GET /docs HTTP/1.1\r\nHost: x\r\n\r\n"] * 3:
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(request)  # the first: the client leaves before its request is whole
                if request.endswith(b"\r\n\r\n"):
                    assert client.recv(64).startswith(b"HTTP/1.1 ")  # the answer begins: `| head -2`
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
        assert requests.get(f"http://127.0.0.1:{port}/playground", timeout=10).status_code == 200


def test_given_serve_with_a_cors_origin_then_it_says_so_and_a_preflight_from_that_origin_is_allowed(
    serve: tuple[str, list[str], dict[str, str]],
) -> None:
    base_url, lines, _ = serve
    assert f"CORS:       on for {APP_ORIGIN}" in lines
    preflight = requests.options(
        f"{base_url}/images/edits",
        headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.headers.get("access-control-allow-origin") == APP_ORIGIN


@pytest.mark.parametrize("columns", ["60", "70", "80", "100"])
def test_given_any_terminal_width_then_help_never_breaks_a_name_at_its_hyphens(
    columns: str, tmp_path: Path
) -> None:
    """Finding: help wrapped ``editgate-local-api-keys`` and ``sk-local`` at their hyphens."""
    for command in (["keys"], ["batch"], ["batch", "run"], ["smoke"], ["serve"]):
        done = editgate(*command, "--help", env=clean_env(tmp_path, COLUMNS=columns))
        assert not re.search(r"\w-\n", done.stdout), done.stdout


def test_given_keys_and_batch_verbs_then_each_help_has_a_description_and_examples(tmp_path: Path) -> None:
    for command in (["keys", "create"], ["keys", "list"], ["batch", "run"], ["batch", "status"]):
        done = editgate(*command, "--help", env=clean_env(tmp_path))
        assert f"examples:\n  editgate {' '.join(command)}" in done.stdout, done.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder ``make -f Makefile`` runs in: a samconfig.toml whose deploy saved eu-west-1, and a
    venv (already set up) whose ``sam`` and ``editgate`` only write down how they were called."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.deploy.parameters]\nstack_name = "eg"\nregion = "eu-west-1"\n'
    )
    bin_ = tmp_path / ".venv" / "bin"
    bin_.mkdir(parents=True)
    (bin_ / "python").symlink_to(sys.executable)
    for name in ("sam", "editgate"):
        script = bin_ / name
        call = f"{name} $* (AWS_DEFAULT_REGION=${{AWS_DEFAULT_REGION-unset}})"
        script.write_text(f'#!/bin/sh\necho "{call}" >> {tmp_path}/calls\n')
        script.chmod(0o755)
    (tmp_path / ".venv" / ".installed").touch()
    return tmp_path


def make(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAKE"))}
    makefile = Path(__file__).parents[2] / "Makefile"
    command = ["make", "--no-print-directory", "-f", str(makefile), "-C", str(project), *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.mark.skipif(not shutil.which("make"), reason="no make on this machine")
def test_given_a_region_saved_by_deploy_when_make_smoke_then_it_checks_that_region_not_us_east_1(
    project: Path,
) -> None:
    """Finding 3: the Makefile exported AWS_DEFAULT_REGION=us-east-1 to every target: with the
    operator's region eu-west-1, ``make smoke`` checked us-east-1. Given samconfig's saved
    eu-west-1 and no AWS variable, when ``make smoke``, then editgate gets --region eu-west-1 and
    no region forced on it."""
    done = make(project, "smoke")
    assert done.returncode == 0, done.stdout + done.stderr
    calls = (project / "calls").read_text()
    assert "editgate smoke --stack eg --region eu-west-1 (AWS_DEFAULT_REGION=unset)" in calls


@pytest.mark.skipif(not shutil.which("make"), reason="no make on this machine")
def test_given_no_python_3_13_when_make_deploy_then_it_refuses_in_one_line_and_sam_deploy_never_runs(
    project: Path,
) -> None:
    """Finding 4: without Python 3.13, ``make deploy`` ran ``sam deploy`` after build printed
    SKIPPED. Given a venv without 3.13, when ``make deploy``, then it fails saying why, and sam
    is never called."""
    done = make(project, "deploy", "HAS_PY313=0")
    assert done.returncode != 0
    assert "cannot deploy: sam build needs Python 3.13" in done.stdout + done.stderr
    assert not (project / "calls").exists()
