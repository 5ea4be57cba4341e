"""Point-in-time restore: base backup plus archived WAL, replayed to a chosen moment on a new cluster."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from deploy.ops.backup.crypto import MAGIC
from deploy.ops.pitr import runner
from deploy.ops.pitr.wal import SALT_SIZE
from devtools.local_postgres import LocalPostgres

from .conftest import Archive, cluster_os_user, give_to_cluster_user

# A segment's push is a python3 + boto3 start and one upload: seconds on a loaded 2-core machine.
ARCHIVE_PUSH_MARGIN_S = 20


def server_now(cluster: LocalPostgres) -> datetime:
    return datetime.fromisoformat(
        cluster.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US+00:00')")
    )


def wait_past(cluster: LocalPostgres, moment: datetime, timeout: float = 10.0) -> datetime:
    """Poll the server's clock until it reads later than `moment`, so two commits are strictly ordered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = server_now(cluster)
        if now > moment:
            return now
    raise AssertionError(f"the server clock did not pass {moment.isoformat()} in {timeout}s")


def start_restored(archive: Archive, name: str, target: datetime | None) -> LocalPostgres:
    base = archive.root / name
    prepared = runner.prepare_restore(
        archive.settings, base / "data", target, archive.wal_command("fetch"), cluster_os_user()
    )
    assert prepared.backup_id
    base.mkdir(exist_ok=True)
    (base / "run").mkdir(exist_ok=True)
    give_to_cluster_user(base)
    give_to_cluster_user(base / "run")
    copy = LocalPostgres(base)
    copy.start()
    deadline = time.monotonic() + 120
    while copy.psql("SELECT pg_is_in_recovery()") == "t":
        assert time.monotonic() < deadline, "the restored copy did not finish recovery in 120 s"
        time.sleep(0.1)
    return copy


def test_restore_to_a_time_between_two_writes_finds_exactly_the_first(archive: Archive) -> None:
    primary = archive.primary
    primary.psql("CREATE TABLE ledger (note text PRIMARY KEY)")
    runner.take_base_backup(archive.settings, primary.host, primary.port, "postgres", cluster_os_user())
    primary.psql("INSERT INTO ledger VALUES ('first-write')")
    committed_first = server_now(primary)
    target = wait_past(primary, committed_first)
    wait_past(primary, target)
    primary.psql("INSERT INTO ledger VALUES ('second-write')")
    archive.wait_archived()

    copy = start_restored(archive, "at-target", target)
    try:
        assert copy.psql("SELECT string_agg(note, ',' ORDER BY note) FROM ledger") == "first-write"
    finally:
        copy.destroy()


def test_restore_to_latest_replays_every_archived_write(archive: Archive) -> None:
    primary = archive.primary
    primary.psql("CREATE TABLE ledger (note text PRIMARY KEY)")
    runner.take_base_backup(archive.settings, primary.host, primary.port, "postgres", cluster_os_user())
    primary.psql("INSERT INTO ledger SELECT 'row-' || n FROM generate_series(1, 500) AS n")
    archive.wait_archived()

    copy = start_restored(archive, "latest", None)
    try:
        assert copy.psql("SELECT count(*) FROM ledger") == "500"
    finally:
        copy.destroy()


def test_archived_segments_are_encrypted_client_side(archive: Archive, archive_s3) -> None:
    archive.primary.psql("CREATE TABLE secrets (note text); INSERT INTO secrets VALUES ('plaintext-marker-42')")
    archive.wait_archived()
    client = archive_s3.client()
    listed = client.list_objects_v2(Bucket=archive.settings.bucket, Prefix=f"{archive.settings.prefix}/")
    wal_keys = [item["Key"] for item in listed.get("Contents", []) if "/wals/" in item["Key"]]
    assert wal_keys, "no WAL segment in the archive"
    for key in wal_keys:
        body = client.get_object(Bucket=archive.settings.bucket, Key=key)["Body"].read()
        assert body[SALT_SIZE : SALT_SIZE + len(MAGIC)] == MAGIC, key
        assert b"plaintext-marker-42" not in body


def test_async_archiving_loses_at_most_archive_timeout_of_acknowledged_writes_on_a_sigkill(archive: Archive) -> None:
    """RPO with asynchronous archiving: the primary dies at an arbitrary moment of a write stream;
    what the archive alone gives back ends at most archive_timeout (plus one segment's push) earlier."""
    import os
    import signal

    from .test_standby_failover import Writer, postmaster_pid

    timeout_s = 5
    primary = archive.primary
    primary.psql(f"ALTER SYSTEM SET archive_timeout = '{timeout_s}s'")
    primary.psql("SELECT pg_reload_conf()")
    primary.psql("CREATE TABLE purchases_acked (n int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    runner.take_base_backup(archive.settings, primary.host, primary.port, "postgres", cluster_os_user())
    writer = Writer(primary.dsn(), limit=1_000_000, seconds=90)
    writer.start()
    started = time.monotonic()
    while time.monotonic() - started < 4 * timeout_s:  # several archive_timeout cycles of writes
        assert writer.is_alive(), f"the writer stopped early: {writer.error!r}"
        time.sleep(0.2)
    killed_at = datetime.now(UTC)  # the same clock as the server's clock_timestamp(): one machine
    os.kill(postmaster_pid(primary), signal.SIGKILL)
    writer.join(timeout=60)
    last_acked = writer.acknowledged[-1]

    copy = start_restored(archive, "after-crash", None)
    try:
        restored = int(copy.psql("SELECT coalesce(max(n), 0) FROM purchases_acked"))
        newest = datetime.fromisoformat(
            copy.psql(
                "SELECT to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US+00:00') FROM purchases_acked"
            )
        )
    finally:
        copy.destroy()
    window_s = (killed_at - newest).total_seconds()
    print(f"acknowledged={last_acked} restored={restored} lost={last_acked - restored} lost_window_s={window_s:.1f}")
    assert 0 < restored <= last_acked
    # One open segment at most is lost: archive_timeout, plus the time to push the previous one on a busy machine.
    assert window_s <= timeout_s + ARCHIVE_PUSH_MARGIN_S, f"{window_s:.1f}s of writes lost"
