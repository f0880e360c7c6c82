"""Shared fixtures: one embedded local stack (moto server, fal emulator, API front) per session."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from PIL import Image

from editgate_local.cli import SAMPLE_IMAGE
from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import LocalStack

API_KEY = "sk-local"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    # environ={}: a developer's own FAL_KEY must never send test traffic to real fal.
    with LocalStack(api_keys=(API_KEY, "sk-second"), environ={}) as local:
        yield local


@pytest.fixture
def emulator(stack: LocalStack) -> Iterator[FalEmulator]:
    assert stack.emulator is not None
    stack.emulator.reset()
    yield stack.emulator
    stack.emulator.reset()


@pytest.fixture
def client(stack: LocalStack, emulator: FalEmulator) -> openai.OpenAI:
    # No SDK retries: each test sees exactly the calls it makes.
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture
def sample_png() -> Path:
    return SAMPLE_IMAGE


def png_bytes(
    size: tuple[int, int] = (320, 200), color: tuple[int, ...] = (200, 40, 40), mode: str = "RGB"
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, format="PNG")
    return out.getvalue()


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
