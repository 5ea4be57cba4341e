"""`clicknback-ops archive-lag` against a primary that archives, then one whose archive_command fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from .conftest import ROOT, Archive


def archive_lag(archive: Archive) -> tuple[int, dict]:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.ops.cli", "archive-lag", "--database-url", archive.primary.dsn()],
        cwd=ROOT,
        env={**os.environ, "ENV_FILE": "/dev/null"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, json.loads(result.stdout)


def test_archive_lag_is_ok_while_archiving_and_flags_a_failing_archive_command(archive: Archive) -> None:
    primary = archive.primary
    primary.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS n")
    archive.wait_archived()
    status, report = archive_lag(archive)
    assert (status, report["status"], report["pending_segments"]) == (0, "ok", 0)

    primary.psql("ALTER SYSTEM SET archive_command = 'exit 1'")
    primary.psql("SELECT pg_reload_conf()")
    primary.psql("INSERT INTO t SELECT generate_series(1, 1000)")
    primary.psql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 60
    while primary.psql("SELECT failed_count FROM pg_stat_archiver") == "0":
        assert time.monotonic() < deadline, "the archiver never tried the failing command"
        time.sleep(0.1)
    status, report = archive_lag(archive)
    assert (status, report["status"]) == (1, "failing"), report
