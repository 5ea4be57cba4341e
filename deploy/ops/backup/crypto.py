"""Optional client-side encryption of backup data: AES-256-GCM over fixed-size chunks.

Stream format (`CNBKGCM1`): an 8-byte magic, then frames of
    4-byte big-endian ciphertext length | 1-byte final flag | ciphertext (includes the 16-byte tag)
Each chunk is authenticated with its index and the final flag as associated data, so reordered,
dropped or truncated frames fail to decrypt. The data key is derived per backup with HKDF from
BACKUP_ENCRYPTION_KEY and a random salt stored in the manifest; a short key check value in the
manifest tells "wrong key" apart from "corrupted data" before anything is downloaded.
The key itself is never logged, printed or stored.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ALGORITHM = "AES-256-GCM-CHUNKED-v1"
MAGIC = b"CNBKGCM1"
CHUNK_SIZE = 1024 * 1024
MIN_KEY_LENGTH = 32
_FRAME_HEADER = struct.Struct(">IB")
_TAG_SIZE = 16


class DecryptionError(RuntimeError):
    """Wrong key or damaged data: the plaintext must not be used."""


def _derive(secret: str, salt: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"clicknback-backup " + purpose).derive(
        secret.encode()
    )


def new_salt() -> bytes:
    return os.urandom(16)


def key_check(secret: str, salt: bytes) -> str:
    """A value that identifies the key for this salt without revealing anything about it."""
    return hmac.new(_derive(secret, salt, b"key-check"), b"clicknback", hashlib.sha256).hexdigest()[:16]


def encryption_metadata(secret: str, salt: bytes) -> dict:
    return {"algorithm": ALGORITHM, "salt": salt.hex(), "key_check": key_check(secret, salt), "chunk_size": CHUNK_SIZE}


def check_key(secret: str, metadata: dict) -> None:
    if metadata.get("algorithm") != ALGORITHM:
        raise DecryptionError(f"unsupported encryption algorithm {metadata.get('algorithm')!r}")
    if not hmac.compare_digest(key_check(secret, bytes.fromhex(metadata["salt"])), metadata["key_check"]):
        raise DecryptionError("BACKUP_ENCRYPTION_KEY is not the key this backup was encrypted with")


def _nonce(index: int) -> bytes:
    # A fresh key per backup (random salt), so a counter nonce never repeats under one key.
    return index.to_bytes(12, "big")


def _aad(index: int, final: bool) -> bytes:
    return index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


class Encryptor:
    """Feed plaintext, collect ciphertext; memory bounded by one chunk."""

    def __init__(self, secret: str, salt: bytes, chunk_size: int = CHUNK_SIZE) -> None:
        self._aead = AESGCM(_derive(secret, salt, b"data"))
        self._chunk_size = chunk_size
        self._pending = bytearray()
        self._index = 0
        self._started = False

    def _frame(self, plaintext: bytes, final: bool) -> bytes:
        ciphertext = self._aead.encrypt(_nonce(self._index), plaintext, _aad(self._index, final))
        self._index += 1
        return _FRAME_HEADER.pack(len(ciphertext), 1 if final else 0) + ciphertext

    def _header(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return MAGIC

    def update(self, data: bytes) -> bytes:
        self._pending += data
        out = [self._header()]
        # Keep at least one byte back so the final frame is never empty unless the stream is.
        while len(self._pending) > self._chunk_size:
            out.append(self._frame(bytes(self._pending[: self._chunk_size]), final=False))
            del self._pending[: self._chunk_size]
        return b"".join(out)

    def finish(self) -> bytes:
        data = self._header() + self._frame(bytes(self._pending), final=True)
        self._pending.clear()
        return data


class Decryptor:
    """Feed ciphertext, collect plaintext; raises DecryptionError on any tampering or a wrong key."""

    def __init__(self, secret: str, salt: bytes) -> None:
        self._aead = AESGCM(_derive(secret, salt, b"data"))
        self._buffer = bytearray()
        self._index = 0
        self._magic_checked = False
        self._finished = False

    def update(self, data: bytes) -> bytes:
        self._buffer += data
        out: list[bytes] = []
        if not self._magic_checked:
            if len(self._buffer) < len(MAGIC):
                return b""
            if bytes(self._buffer[: len(MAGIC)]) != MAGIC:
                raise DecryptionError("the data is not an encrypted backup stream")
            del self._buffer[: len(MAGIC)]
            self._magic_checked = True
        while len(self._buffer) >= _FRAME_HEADER.size:
            length, final = _FRAME_HEADER.unpack_from(self._buffer)
            if length < _TAG_SIZE or length > CHUNK_SIZE * 64:
                raise DecryptionError("damaged encrypted frame header")
            if len(self._buffer) < _FRAME_HEADER.size + length:
                break
            if self._finished:
                raise DecryptionError("data after the final encrypted frame")
            ciphertext = bytes(self._buffer[_FRAME_HEADER.size : _FRAME_HEADER.size + length])
            del self._buffer[: _FRAME_HEADER.size + length]
            try:
                out.append(self._aead.decrypt(_nonce(self._index), ciphertext, _aad(self._index, bool(final))))
            except InvalidTag:
                raise DecryptionError(
                    f"encrypted chunk {self._index} failed authentication (wrong key or damaged data)"
                ) from None
            self._index += 1
            self._finished = bool(final)
        return b"".join(out)

    def finish(self) -> None:
        if not self._magic_checked or not self._finished or self._buffer:
            raise DecryptionError("the encrypted stream is truncated")
