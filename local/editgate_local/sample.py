"""The sample image the CLI edits when given none, and the tests and ready events use."""

from __future__ import annotations

from pathlib import Path

SAMPLE_IMAGE = Path(__file__).with_name("sample.png")
