"""PostgreSQL's archive_command and restore_command: one WAL segment to or from the archive.

    archive_command = 'PYTHONPATH=CODE python3 -m deploy.ops.pitr.wal --env-file F push %p'
    restore_command = 'PYTHONPATH=CODE python3 -m deploy.ops.pitr.wal --env-file F fetch %f %p'

PostgreSQL's own account runs these with the system python3, so this module uses the standard
library and `cryptography` only. barman-cloud ships the segment; barman encrypts on the server side
only, so with BACKUP_ENCRYPTION_KEY set the segment is compressed and encrypted here first (the
dumps' AES-256-GCM stream, a fresh salt per segment in front) and barman ships that opaque file
under the segment's name. Exit status 0 tells PostgreSQL the segment is safe (push) or in place
(fetch); anything else makes it retry (push) or end replay there (fetch).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from deploy.ops.pitr.barman import PitrSettings, load_pitr_settings, wal_archive_argv, wal_restore_argv

SALT_SIZE = 16
# One segment (16 MiB by default) is read whole: bounded, and it keeps the code short.
MAX_SEGMENT_BYTES = 1024**3
TOOL_TIMEOUT_SECONDS = 300


def read_env_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines, # comments, optional matching quotes: the secrets file's format."""
    values: dict[str, str] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip().removeprefix("export ").strip()] = value
    return values


def seal(plain: bytes, key: str) -> bytes:
    from deploy.ops.backup.crypto import Encryptor, new_salt

    salt = new_salt()
    encryptor = Encryptor(key, salt)
    return salt + encryptor.update(zlib.compress(plain, 6)) + encryptor.finish()


def unseal(sealed: bytes, key: str) -> bytes:
    from deploy.ops.backup.crypto import Decryptor

    decryptor = Decryptor(key, sealed[:SALT_SIZE])
    compressed = decryptor.update(sealed[SALT_SIZE:])
    decryptor.finish()
    return zlib.decompress(compressed)


def _run(argv: list[str], settings: PitrSettings) -> int:
    env = {**os.environ, **settings.cloud_env()}
    try:
        result = subprocess.run(argv, env=env, timeout=TOOL_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        print(f"pitr-wal: {Path(argv[0]).name} did not finish in {TOOL_TIMEOUT_SECONDS}s", file=sys.stderr)
        return 1
    return result.returncode


def push(settings: PitrSettings, wal_path: str) -> int:
    source = Path(wal_path)
    if settings.encryption_key is None:
        return _run(wal_archive_argv(settings, str(source), compress=True), settings)
    if source.stat().st_size > MAX_SEGMENT_BYTES:
        print(f"pitr-wal: {source.name} is larger than {MAX_SEGMENT_BYTES} bytes", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="pitr-wal-") as staging:
        # barman names the object after the file, so the sealed copy keeps the segment's name.
        sealed = Path(staging) / source.name
        sealed.write_bytes(seal(source.read_bytes(), settings.encryption_key))
        return _run(wal_archive_argv(settings, str(sealed), compress=False), settings)


def fetch(settings: PitrSettings, wal_name: str, destination: str) -> int:
    if settings.encryption_key is None:
        return _run(wal_restore_argv(settings, wal_name, destination), settings)
    with tempfile.TemporaryDirectory(prefix="pitr-wal-") as staging:
        sealed = Path(staging) / wal_name
        status = _run(wal_restore_argv(settings, wal_name, str(sealed)), settings)
        if status != 0:
            return status
        plain = unseal(sealed.read_bytes(), settings.encryption_key)
        partial = Path(destination + ".partial")
        partial.write_bytes(plain)
        partial.replace(destination)  # PostgreSQL must never read a half-written segment
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pitr-wal")
    parser.add_argument("--env-file", required=True)
    sub = parser.add_subparsers(dest="action", required=True)
    push_parser = sub.add_parser("push")
    push_parser.add_argument("wal_path")
    fetch_parser = sub.add_parser("fetch")
    fetch_parser.add_argument("wal_name")
    fetch_parser.add_argument("destination")
    args = parser.parse_args(argv)
    try:
        settings = load_pitr_settings({**read_env_file(args.env_file), **os.environ})
        if args.action == "push":
            return push(settings, args.wal_path)
        return fetch(settings, args.wal_name, args.destination)
    except Exception as error:  # noqa: BLE001 - PostgreSQL only reads the exit status; say why on stderr
        print(f"pitr-wal {args.action}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
