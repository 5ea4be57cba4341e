"""A Ctrl-C while a multipart upload is being opened leaves no upload in the bucket: neither when
the interrupt lands after the bucket answered but before the upload id is ours, nor while the
upload's sending thread starts (seen under load as "Ctrl-C left the partial upload behind")."""

from __future__ import annotations

import pytest

from deploy.ops.backup import store as store_module
from deploy.ops.backup.store import S3Store
from devtools.local_s3 import LocalS3

KEY = "interrupted/backup.tar.gz"


def _store(local_s3: LocalS3, bucket: str) -> S3Store:
    settings = local_s3.settings(bucket)
    return S3Store(
        settings["S3_ENDPOINT_URL"],
        bucket,
        settings["S3_REGION"],
        settings["S3_ACCESS_KEY_ID"],
        settings["S3_SECRET_ACCESS_KEY"],
    )


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def _uploads(local_s3: LocalS3, bucket: str) -> list[str]:
    return [upload["Key"] for upload in local_s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_interrupt_after_the_bucket_opened_the_upload_aborts_it(local_s3, bucket):
    store = _store(local_s3, bucket)
    create = store.client.create_multipart_upload

    def answered_then_interrupted(**kwargs):
        create(**kwargs)  # the bucket holds the upload; its id never reaches the caller
        raise KeyboardInterrupt

    store.client.create_multipart_upload = answered_then_interrupted
    with pytest.raises(KeyboardInterrupt):
        store.open_multipart(KEY, 5 * 1024 * 1024)
    assert _uploads(local_s3, bucket) == []


def test_interrupt_while_the_sending_thread_starts_aborts_the_upload(local_s3, bucket, monkeypatch):
    monkeypatch.setattr(store_module.MultipartUpload, "__init__", _interrupted)
    with pytest.raises(KeyboardInterrupt):
        _store(local_s3, bucket).open_multipart(KEY, 5 * 1024 * 1024)
    assert _uploads(local_s3, bucket) == []


def test_other_uploads_in_the_bucket_are_left_alone(local_s3, bucket, monkeypatch):
    client = local_s3.client()
    other = client.create_multipart_upload(Bucket=bucket, Key=KEY + ".other")["UploadId"]
    monkeypatch.setattr(store_module.MultipartUpload, "__init__", _interrupted)
    with pytest.raises(KeyboardInterrupt):
        _store(local_s3, bucket).open_multipart(KEY, 5 * 1024 * 1024)
    assert _uploads(local_s3, bucket) == [KEY + ".other"]
    client.abort_multipart_upload(Bucket=bucket, Key=KEY + ".other", UploadId=other)
