"""`invoke standby` and `invoke failover` over SSH against two real clusters: the standby built,
rebuilt harmlessly, the primary SIGKILLed under synchronous writes, no acknowledged write lost,
the fenced old primary read-only when it comes back, then rebuilt as the new standby."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from deploy.inventory import load_inventory
from deploy.session import Session
from deploy.standby import read_replication
from devtools.local_sshd import ports_free_on_all
from devtools.sandbox import APP_ROLE, DATABASE
from tests.integration.pitr.test_standby_failover import Writer

from .conftest import Clusters, pid_gone, wait_for

pytestmark = pytest.mark.e2e


def test_standby_dry_run_changes_nothing_then_builds_and_a_rerun_is_harmless(clusters: Clusters) -> None:
    code, output = clusters.invoke("failover", check=False)
    assert (code, output.strip()) == (
        1,
        "ERROR: failover needs exactly one standby among the reachable hosts (found: none): name it with --standby",
    )
    code, output = clusters.invoke("standby", "--host", "nosuch", check=False)
    assert (code, output.strip()) == (
        1,
        "ERROR: --host nosuch: no such host in environment sandbox (hosts: host-2, host-3)",
    )
    _, plan = clusters.invoke("standby", "--host", "host-3", "--synchronous", "--dry-run", "--verbose")
    assert "would run:" in plan and "pg_basebackup" in plan and "synchronous_standby_names" in plan
    assert plan.strip().endswith(
        "dry run: host-3 would be a hot standby of host-2 (synchronous, slot standby_host_3), rebuilt from a fresh base backup"
    )
    assert not (clusters.data_dir("host-3") / "PG_VERSION").exists()  # the dry run built nothing

    _, output = clusters.invoke("standby", "--host", "host-3", "--synchronous")
    assert "host-3 is a hot standby of host-2 (synchronous, slot standby_host_3): rebuilt" in output, output
    clusters.psql("host-2", "INSERT INTO purchases_acked SELECT generate_series(1, 50)")  # waits for the standby
    assert clusters.psql("host-3", "SELECT count(*) FROM purchases_acked") == "50"
    assert clusters.psql("host-2", "SELECT sync_state FROM pg_stat_replication") == "sync"
    assert (
        "PASSWORD" not in output
        and clusters.psql("host-2", "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'") == "t"
    )

    with Session(load_inventory(str(clusters.sandbox.inventory_path)).environment("sandbox")) as session:
        lag = read_replication(session)  # what `invoke stats` shows
    [standby] = lag["standbys"]
    assert (lag["status"], standby["application_name"], standby["sync_state"]) == ("ok", "standby_host_3", "sync")
    assert isinstance(standby["lag_bytes"], int) and isinstance(standby["lag_s"], float)
    # What `health` and `handoff` read as the app's role (archive-lag): the lag in bytes too.
    app = subprocess.run(
        [
            f"{clusters.bindir}/psql",
            "-h",
            "127.0.0.2",
            "-p",
            str(clusters.port),
            "-U",
            APP_ROLE,
            "-d",
            DATABASE,
            "-qAtX",
        ]
        + ["-c", "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) IS NOT NULL FROM pg_stat_replication"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert app.stdout.strip() == "t", app.stderr

    _, again = clusters.invoke("standby", "--host", "host-3")
    assert "(asynchronous, slot standby_host_3): already streaming" in again, again
    assert clusters.psql("host-2", "SELECT sync_state FROM pg_stat_replication") == "async"

    # A stopped cluster that would start as a primary is refused; an interrupted build is rebuilt.
    clusters.as_deploy_user(f"{clusters.bindir}/pg_ctl stop -D {clusters.data_dir('host-3')} -m fast -w")
    (clusters.data_dir("host-3") / "standby.signal").unlink()
    code, refused = clusters.invoke("standby", "--host", "host-3", check=False)
    assert code == 1 and refused.strip().endswith("rerun with --replace-data")
    clusters.as_deploy_user(f"touch {clusters.root / 'host-3' / 'clicknback-standby-build'}")
    _, rebuilt = clusters.invoke("standby", "--host", "host-3")
    assert "(asynchronous, slot standby_host_3): rebuilt from a fresh base backup" in rebuilt, rebuilt
    assert not (clusters.root / "host-3" / "clicknback-standby-build").exists()


def test_failover_after_sigkill_under_synchronous_writes_loses_no_acknowledged_write(clusters: Clusters) -> None:
    clusters.invoke("standby", "--host", "host-3", "--synchronous")
    writer = Writer(clusters.dsn("host-2"), limit=20000, seconds=60)
    writer.start()
    wait_for(lambda: len(writer.acknowledged) >= 200 or not writer.is_alive(), 60, "the writer made no progress")
    assert writer.is_alive(), f"the writer stopped early: {writer.error!r}"
    pid = clusters.postmaster_pid("host-2")
    os.kill(pid, signal.SIGKILL)
    writer.join(timeout=60)
    wait_for(lambda: pid_gone(pid), 30, "the killed postmaster did not go away")

    _, plan = clusters.invoke("failover", "--dry-run", "--verbose")
    assert "would run:" in plan and "standby.signal" in plan and "pg_promote" in plan and "postgres://" not in plan
    assert (
        f"would repoint DATABASE_URL in {clusters.sandbox.deploy_root('127.0.0.2')}/shared/.env to 127.0.0.3:" in plan
    )
    assert clusters.psql("host-3", "SELECT pg_is_in_recovery()") == "t"  # the dry run promoted nothing

    started = time.monotonic()
    _, output = clusters.invoke("failover")
    failover_s = time.monotonic() - started
    assert "failover done: primary host-2 (fenced) -> host-3" in output, output
    clusters.psql("host-3", "INSERT INTO purchases_acked VALUES (-1)")  # the new primary takes writes
    on_new = {int(n) for n in clusters.psql("host-3", "SELECT n FROM purchases_acked WHERE n > 0").split()}
    missing = [n for n in writer.acknowledged if n not in on_new]
    print(f"acknowledged={len(writer.acknowledged)} missing={len(missing)} failover_task_s={failover_s:.1f}")
    assert missing == []
    _, again = clusters.invoke("failover", "--standby", "host-3")  # an interrupted failover is finished so
    assert "already the primary" in again and "failover done: primary host-2 (fenced) -> host-3" in again, again

    # The old primary comes back (a reboot, an operator's start): a read-only follower, never a writer.
    for leftover in (clusters.data_dir("host-2") / "postmaster.pid",):
        assert not leftover.exists() or pid_gone(int(leftover.read_text().splitlines()[0]))
    clusters.start("host-2")
    assert clusters.psql("host-2", "SELECT pg_is_in_recovery()") == "t"
    with pytest.raises(AssertionError, match="read-only transaction"):
        clusters.psql("host-2", "INSERT INTO purchases_acked VALUES (-2)")

    # ...and `invoke standby` rebuilds it as the new primary's standby.
    _, rebuilt = clusters.invoke("standby", "--host", "host-2")  # the primary found: host-3 now
    assert "host-2 is a hot standby of host-3 (asynchronous, slot standby_host_2): rebuilt" in rebuilt, rebuilt
    clusters.psql("host-3", "INSERT INTO purchases_acked VALUES (-3)")
    wait_for(
        lambda: clusters.psql("host-2", "SELECT count(*) FROM purchases_acked WHERE n = -3") == "1",
        30,
        "the rebuilt standby did not receive the new primary's write",
    )


def test_a_failover_from_a_dead_host_promotes_the_standby_and_says_the_old_primary_is_not_fenced(
    clusters: Clusters, tmp_path
) -> None:
    clusters.invoke("standby", "--host", "host-3")
    clusters.psql("host-2", "INSERT INTO purchases_acked VALUES (1)")
    wait_for(lambda: clusters.psql("host-3", "SELECT count(*) FROM purchases_acked") == "1", 30, "no replay")
    pid = clusters.postmaster_pid("host-2")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pid_gone(pid), 30, "the killed postmaster did not go away")
    # host-2 is gone as a whole: its SSH port answers nothing.
    closed_port = ports_free_on_all(("127.0.0.2",), 1)[0]
    dead = tmp_path / "inventory.toml"
    text = clusters.sandbox.inventory_path.read_text()
    dead.write_text(text.replace('name = "host-2"\n', f'name = "host-2"\nssh_port = {closed_port}\n', 1))

    _, output = clusters.invoke("failover", inventory=dead)
    assert "host-2 is unreachable: not fenced now" in output, output
    assert "failover done: primary host-2 (unreachable, not fenced) -> host-3" in output, output
    clusters.psql("host-3", "INSERT INTO purchases_acked VALUES (2)")

    # The host is back, its cluster stopped and unfenced: `invoke standby` refuses to erase it unless
    # told, then rebuilds it from the new primary.
    code, refused = clusters.invoke("standby", "--host", "host-2", check=False)
    assert (code, refused.strip()) == (
        1,
        "ERROR: host-2's PostgreSQL may hold data of its own (down): a standby build would erase it; "
        "if it is the old primary of a failover, rerun with --replace-data",
    )
    _, rebuilt = clusters.invoke("standby", "--host", "host-2", "--replace-data")
    assert "host-2 is a hot standby of host-3" in rebuilt, rebuilt
    assert clusters.psql("host-2", "SELECT count(*) FROM purchases_acked") == "2"
