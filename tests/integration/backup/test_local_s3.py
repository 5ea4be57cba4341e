"""devtools/local_s3.py: a process started by one LocalS3 can be found and stopped by another (sandbox)."""

from __future__ import annotations

from devtools.local_s3 import LocalS3


def test_state_dir_lets_a_later_process_find_and_stop_the_server(tmp_path):
    first = LocalS3(state_dir=tmp_path).start()
    try:
        first.create_bucket("sandbox-bucket")
        first.create_bucket("sandbox-bucket")  # idempotent
        first.client().put_object(Bucket="sandbox-bucket", Key="k", Body=b"v")
        later = LocalS3(state_dir=tmp_path)
        assert later.port == first.port and later.answers()
        later.start()  # already running: reused, the bucket is still there
        assert later.client().get_object(Bucket="sandbox-bucket", Key="k")["Body"].read() == b"v"
        later.stop()
        assert not first.answers()
        assert not (tmp_path / "moto.pid").exists() and (tmp_path / "moto.log").exists()
    finally:
        first.stop()
