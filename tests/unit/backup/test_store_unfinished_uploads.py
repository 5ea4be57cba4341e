"""Listing abandoned multipart uploads is housekeeping: a store without the listing (s3rver answers
NotImplemented) must not fail a backup or its retention; any other error still does."""

from datetime import UTC, datetime

import pytest
from botocore.stub import Stubber

from deploy.ops.backup.store import S3Store, StoreError


def _store() -> S3Store:
    return S3Store("http://127.0.0.1:9", "bucket", "us-east-1", "key-id", "secret")


def test_a_store_without_the_listing_has_no_stale_uploads():
    store = _store()
    with Stubber(store.client) as stub:
        stub.add_client_error("list_multipart_uploads", service_error_code="NotImplemented", http_status_code=501)
        assert store.stale_multipart_uploads("bench/", datetime.now(UTC)) == []


def test_another_error_of_the_listing_still_fails():
    store = _store()
    with Stubber(store.client) as stub:
        stub.add_client_error("list_multipart_uploads", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(StoreError, match="list unfinished uploads"):
            store.stale_multipart_uploads("bench/", datetime.now(UTC))
