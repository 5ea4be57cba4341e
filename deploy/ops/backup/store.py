"""The S3-compatible bucket (AWS S3, DigitalOcean Spaces, MinIO, moto): thin boto3 wrappers.

Every botocore failure becomes a StoreError with one readable sentence naming the endpoint and
bucket (never the credentials), so cron mail and the operator see *why* at a glance.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from deploy.ops.backup.model import StoredObject

DOWNLOAD_CHUNK = 1024 * 1024


class StoreError(RuntimeError):
    """The bucket could not be used; the message says what and where."""


def _client_config(addressing_style: str) -> Config:
    options: dict = {
        "retries": {"max_attempts": 3, "mode": "standard"},
        "connect_timeout": 5,
        "read_timeout": 60,
        "s3": {"addressing_style": addressing_style},
    }
    try:
        # Spaces and older MinIO reject the newer default CRC checksums; sha256 is ours anyway.
        return Config(
            **options, request_checksum_calculation="when_required", response_checksum_validation="when_required"
        )
    except TypeError:
        # botocore before 1.36 (Debian 12's, under the PITR CLI's system python3) sends none of them.
        return Config(**options)


class S3Store:
    def __init__(
        self,
        endpoint_url: str | None,
        bucket: str,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        addressing_style: str = "path",
    ) -> None:
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self._where = f"bucket {bucket!r} at {endpoint_url or 'AWS S3'}"
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=_client_config(addressing_style),
        )

    @contextmanager
    def _errors(self, action: str, not_found: str = "not found") -> Iterator[None]:
        try:
            yield
        except EndpointConnectionError:
            raise StoreError(f"cannot {action}: S3 endpoint unreachable ({self._where})") from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "?")
            hint = {
                "NoSuchBucket": "the bucket does not exist",
                "404": not_found,
                "NoSuchKey": "object not found",
                "AccessDenied": "access denied: check S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY and the bucket policy",
                "403": "access denied: check S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY and the bucket policy",
                "InvalidAccessKeyId": "unknown S3_ACCESS_KEY_ID",
                "SignatureDoesNotMatch": "S3_SECRET_ACCESS_KEY does not match S3_ACCESS_KEY_ID",
            }.get(code, error.get("Message") or code)
            raise StoreError(f"cannot {action}: {hint} ({self._where})") from None
        except BotoCoreError as exc:
            raise StoreError(f"cannot {action}: {type(exc).__name__}: {exc} ({self._where})") from None

    # -- small objects -----------------------------------------------------------------------
    def check_bucket(self) -> None:
        with self._errors("use the bucket", not_found="the bucket does not exist"):
            self.client.head_bucket(Bucket=self.bucket)

    def put_bytes(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        with self._errors(f"write {key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def get_bytes(self, key: str) -> bytes:
        with self._errors(f"read {key}"):
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def list_objects(self, prefix: str) -> list[StoredObject]:
        found: list[StoredObject] = []
        with self._errors(f"list {prefix or '/'}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    found.append(StoredObject(item["Key"], item["Size"], item["LastModified"]))
        return found

    def delete_keys(self, keys: list[str]) -> None:
        with self._errors("delete objects"):
            for start in range(0, len(keys), 1000):
                batch = [{"Key": key} for key in keys[start : start + 1000]]
                result = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                if result.get("Errors"):
                    first = result["Errors"][0]
                    raise StoreError(f"cannot delete {first.get('Key')}: {first.get('Message')} ({self._where})")

    def stale_multipart_uploads(self, prefix: str, older_than: datetime) -> list[tuple[str, str]]:
        """(key, upload id) of multipart uploads started before `older_than` and never finished."""
        stale: list[tuple[str, str]] = []
        with self._errors("list unfinished uploads"):
            try:
                pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
                for page in pages:
                    for upload in page.get("Uploads", []):
                        if upload["Initiated"] < older_than:
                            stale.append((upload["Key"], upload["UploadId"]))
            except ClientError as exc:
                # Some S3-compatible stores (s3rver, for one) have no such listing: the clean-up of
                # abandoned parts is housekeeping, never a reason to fail a backup or its retention.
                if exc.response.get("Error", {}).get("Code") != "NotImplemented":
                    raise
        return stale

    def abort_upload(self, key: str, upload_id: str) -> None:
        with self._errors(f"abort the upload of {key}"):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    # -- large objects -----------------------------------------------------------------------
    def open_multipart(self, key: str, part_size: int) -> MultipartUpload:
        """A new upload to `key`, which the caller completes or aborts. A Ctrl-C while it is being
        opened (the bucket may already hold it, its id not yet ours) aborts every upload to `key`."""
        try:
            with self._errors(f"start uploading {key}"):
                upload_id = self.client.create_multipart_upload(
                    Bucket=self.bucket, Key=key, ContentType="application/octet-stream"
                )["UploadId"]
            return MultipartUpload(self, key, upload_id, part_size)
        except BaseException as error:
            if not isinstance(error, StoreError):  # the bucket refused it: there is nothing to abort
                self._abort_uploads_to(key)
            raise

    def _abort_uploads_to(self, key: str) -> None:
        """Abort every unfinished upload to `key` (keys name one backup each); best effort: what
        remains, retention aborts once it is stale."""
        try:
            for found_key, upload_id in self.stale_multipart_uploads(key, datetime.max.replace(tzinfo=UTC)):
                if found_key == key:
                    self.abort_upload(found_key, upload_id)
        except StoreError:
            pass

    def download(
        self, key: str, destination: BinaryIO, on_progress: Callable[[int], None] | None = None
    ) -> tuple[int, str]:
        """Stream an object into a file; returns (size, sha256 hex) of what was received."""
        digest = hashlib.sha256()
        size = 0
        with self._errors(f"download {key}"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(DOWNLOAD_CHUNK):
                destination.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if on_progress:
                    on_progress(size)
        return size, digest.hexdigest()


class MultipartUpload:
    """Parts are sent by one background thread while the caller keeps reading the dump.

    Memory stays bounded: the part being filled, one queued part and the one in flight.
    Nothing becomes visible in the bucket until complete(); abort() throws the parts away.
    """

    _DONE = object()

    def __init__(self, store: S3Store, key: str, upload_id: str, part_size: int) -> None:
        self.store = store
        self.key = key
        self.upload_id = upload_id
        self.part_size = part_size
        self._buffer = bytearray()
        self._parts: list[dict] = []
        self._parts_enqueued = 0
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._send_parts, name="multipart-upload", daemon=True)
        self._thread.start()

    def _send_parts(self) -> None:
        number = 0
        while True:
            part = self._queue.get()
            if part is self._DONE:
                return
            if self._error is not None:
                continue  # drain what is queued so the producer never blocks forever
            number += 1
            try:
                with self.store._errors(f"upload part {number} of {self.key}"):
                    response = self.store.client.upload_part(
                        Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=part
                    )
                self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
            except BaseException as exc:  # noqa: BLE001 - handed to the producer thread
                self._error = exc

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _enqueue(self, item: object) -> None:
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= self.part_size:
            self._enqueue(bytes(self._buffer[: self.part_size]))
            self._parts_enqueued += 1
            del self._buffer[: self.part_size]

    def complete(self) -> None:
        if self._buffer or not self._parts_enqueued:  # S3 needs at least one part, even an empty one
            self._enqueue(bytes(self._buffer))
            self._parts_enqueued += 1
            self._buffer.clear()
        self._enqueue(self._DONE)
        self._thread.join()
        self._raise_if_failed()
        with self.store._errors(f"complete the upload of {self.key}"):
            self.store.client.complete_multipart_upload(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self._parts},
            )

    def abort(self) -> bool:
        """Discard every part. Returns False when the bucket could not be told (prune cleans up later)."""
        self._error = self._error or StoreError("upload aborted")
        while self._thread.is_alive():
            try:
                self._queue.put(self._DONE, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join(timeout=180)
        self._buffer.clear()
        try:
            self.store.abort_upload(self.key, self.upload_id)
            return True
        except StoreError:
            return False


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(DOWNLOAD_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
