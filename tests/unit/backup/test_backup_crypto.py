"""Chunked AES-GCM stream: round trip, wrong key, tampering, truncation, reordering."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.ops.backup.crypto import (
    DecryptionError,
    Decryptor,
    Encryptor,
    check_key,
    encryption_metadata,
)

KEY = "k" * 40
SALT = bytes(range(16))


def encrypt(data: bytes, feed: int = 7000, chunk_size: int = 4096) -> bytes:
    encryptor = Encryptor(KEY, SALT, chunk_size=chunk_size)
    out = b"".join(encryptor.update(data[i : i + feed]) for i in range(0, len(data), feed))
    return out + encryptor.finish()


def decrypt(blob: bytes, key: str = KEY, feed: int = 5000) -> bytes:
    decryptor = Decryptor(key, SALT)
    out = b"".join(decryptor.update(blob[i : i + feed]) for i in range(0, len(blob), feed))
    decryptor.finish()
    return out


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=20000), st.integers(min_value=1, max_value=9000), st.integers(min_value=1, max_value=9000))
def test_round_trip_whatever_the_feeding(data, feed_in, feed_out):
    assert decrypt(encrypt(data, feed_in), feed=feed_out) == data


def test_wrong_key_is_detected_by_key_check_and_by_decryption():
    metadata = encryption_metadata(KEY, SALT)
    check_key(KEY, metadata)
    with pytest.raises(DecryptionError, match="not the key"):
        check_key("x" * 40, metadata)
    with pytest.raises(DecryptionError, match="failed authentication"):
        decrypt(encrypt(b"hello" * 1000), key="x" * 40)


def test_metadata_never_contains_the_key():
    metadata = encryption_metadata(KEY, SALT)
    assert KEY not in repr(metadata)
    assert set(metadata) == {"algorithm", "salt", "key_check", "chunk_size"}


def test_tampering_truncation_and_extra_data_are_refused():
    blob = encrypt(os.urandom(20000))
    flipped = bytearray(blob)
    flipped[100] ^= 1
    with pytest.raises(DecryptionError):
        decrypt(bytes(flipped))
    with pytest.raises(DecryptionError, match="truncated"):
        decrypt(blob[:-1])
    frame = 4 + 1 + 4096 + 16
    with pytest.raises(DecryptionError, match="truncated"):
        decrypt(blob[: 8 + frame])  # whole frames, but the final one is missing
    with pytest.raises(DecryptionError):
        decrypt(blob + blob[8:])
    with pytest.raises(DecryptionError):
        decrypt(b"NOTMAGIC" + blob[8:])


def test_reordered_frames_fail():
    blob = encrypt(os.urandom(3 * 4096 + 10))
    frame = 4 + 1 + 4096 + 16
    first, second = blob[8 : 8 + frame], blob[8 + frame : 8 + 2 * frame]
    swapped = blob[:8] + second + first + blob[8 + 2 * frame :]
    with pytest.raises(DecryptionError, match="authentication"):
        decrypt(swapped)
