"""A streaming standby on loopback: built with pg_basebackup and a slot, synchronous commit, the
primary SIGKILLed under a stream of acknowledged writes, promotion, and the fenced old primary."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import asyncpg
import pytest

from bench import standby as standby_cluster
from deploy.ops.pitr import replication
from deploy.ops.pitr.barman import config_lines
from devtools.local_postgres import LocalPostgres

from .conftest import Archive
from .test_archive_lag import archive_lag

SLOT = "standby_1"


def build_standby(archive: Archive) -> LocalPostgres:
    """The standby as the bench's --standby builds it, with the archive as its fallback."""
    return standby_cluster.build(archive.primary, archive.root / "standby", SLOT, archive.wal_command("fetch"))


def poll(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s"
        time.sleep(0.05)


def postmaster_pid(cluster: LocalPostgres) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])


class Writer(threading.Thread):
    """Inserts numbered rows one commit at a time and records each one the server acknowledged."""

    def __init__(self, dsn: str, limit: int = 20000, seconds: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.dsn, self.limit, self.seconds = dsn, limit, seconds
        self.acknowledged: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        asyncio.run(self._write())

    async def _write(self) -> None:
        deadline = time.monotonic() + self.seconds
        conn = None
        try:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            await conn.execute("SET synchronous_commit = on")
            for n in range(1, self.limit + 1):
                if time.monotonic() > deadline:
                    return
                await conn.execute("INSERT INTO purchases_acked (n) VALUES ($1)", n, timeout=10)
                self.acknowledged.append(n)
        except Exception as error:  # noqa: BLE001 - the primary died under us: expected, kept for the report
            self.error = error
        finally:
            if conn is not None:
                conn.terminate()


@pytest.fixture
def standby(archive: Archive):
    archive.primary.psql("CREATE TABLE purchases_acked (n int PRIMARY KEY)")
    cluster = build_standby(archive)
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_the_standby_streams_and_reports_its_lag(archive: Archive, standby: LocalPostgres) -> None:
    archive.primary.psql("INSERT INTO purchases_acked SELECT generate_series(1, 100)")
    poll(lambda: standby.psql("SELECT count(*) FROM purchases_acked") == "100", 30, "the standby did not catch up")
    rows = archive.primary.psql(replication.REPLICATION_LAG_SQL.replace("\n", " ")).splitlines()
    name, state, _sync, lag_bytes, _lag_s = rows[0].split("|")
    assert (name, state) == (SLOT, "streaming") and int(lag_bytes) >= 0
    slot = archive.primary.psql(f"SELECT active FROM pg_replication_slots WHERE slot_name = '{SLOT}'")
    assert slot == "t"  # the primary keeps the WAL this standby still needs
    status, report = archive_lag(archive)  # what `invoke health` and `invoke handoff` print
    assert status == 0 and report["replication"]["status"] == "ok", report
    assert [s["application_name"] for s in report["replication"]["standbys"]] == [SLOT]


def test_sigkill_under_synchronous_writes_then_promotion_loses_no_acknowledged_write(
    archive: Archive, standby: LocalPostgres
) -> None:
    primary = archive.primary
    for statement in replication.synchronous_sql(SLOT):
        primary.psql(statement)
    poll(
        lambda: primary.psql("SELECT sync_state FROM pg_stat_replication") == "sync",
        30,
        "the standby never became sync",
    )
    writer = Writer(primary.dsn())
    writer.start()
    poll(lambda: len(writer.acknowledged) >= 200 or not writer.is_alive(), 60, "the writer made no progress")
    assert writer.is_alive(), f"the writer stopped early: {writer.error!r}"

    os.kill(postmaster_pid(primary), signal.SIGKILL)
    writer.join(timeout=60)
    assert not writer.is_alive()
    killed_at = time.monotonic()
    # Fence before anything can restart the old primary: it comes back as a read-only follower.
    fence = replication.fence_settings(f"host={standby.host} port={standby.port} user=postgres")
    with open(primary.data_dir / "postgresql.auto.conf", "a") as handle:
        handle.write(config_lines(fence))
    (primary.data_dir / "standby.signal").touch()

    assert standby.psql(replication.promote_sql(60)) == "t"
    standby.psql("INSERT INTO purchases_acked VALUES (-1)")  # the new primary takes writes
    rto_s = time.monotonic() - killed_at
    on_new_primary = {int(n) for n in standby.psql("SELECT n FROM purchases_acked WHERE n > 0").split()}
    missing = [n for n in writer.acknowledged if n not in on_new_primary]
    print(f"acknowledged={len(writer.acknowledged)} missing={len(missing)} promote_to_first_write_s={rto_s:.2f}")
    assert missing == [], f"{len(missing)} acknowledged writes lost"

    _kill_leftovers(primary)
    primary.start()  # the old primary comes back after its crash...
    assert primary.psql("SELECT pg_is_in_recovery()") == "t"
    with pytest.raises(Exception, match="read-only transaction"):
        primary.psql("INSERT INTO purchases_acked VALUES (-2)")  # ...and cannot take a write


def _kill_leftovers(cluster: LocalPostgres) -> None:
    """SIGKILL leaves the postmaster's children to exit on their own; wait for the pid file's owner to go."""
    pid_file: Path = cluster.data_dir / "postmaster.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().splitlines()[0])
        poll(lambda: not Path(f"/proc/{pid}").exists(), 30, "the killed postmaster did not go away")
