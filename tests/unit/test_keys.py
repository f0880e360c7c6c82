"""API keys: what is kept of a key, and when a kept key still opens the gateway."""

from __future__ import annotations

import pytest

from editgate.adapters.keys import KEY_PREFIX, bearer_key, key_hash, new_record


def test_given_a_new_key_then_only_its_hash_is_kept() -> None:
    key, record = new_record("team-a")
    assert key.startswith(KEY_PREFIX)
    assert key not in record.model_dump_json()
    assert record.key_hash == key_hash(key)
    assert record.usage_key != key


@pytest.mark.parametrize(
    ("header", "key"),
    [("Bearer sk-1", "sk-1"), ("bearer sk-1", "sk-1"), ("Basic sk-1", None), ("sk-1", None),
     ("Bearer ", None), ("", None), (None, None)],
)  # fmt: skip
def test_given_an_authorization_header_then_only_a_bearer_key_is_read(
    header: str | None, key: str | None
) -> None:
    assert bearer_key(header) == key


def test_given_expiry_and_revocation_then_a_key_is_usable_only_before_one_and_without_the_other() -> None:
    _, record = new_record("team-a", expires_at=1000)
    assert record.usable(999)
    assert not record.usable(1000)
    assert not record.model_copy(update={"revoked": True}).usable(0)
