"""Point-in-time recovery as an operator runs it over SSH: provision --pitr, restore --to-time,
discard-restore, verify-backup --pitr, and the archive's lag in health and handoff.

The tests run in file order on one module's world: provision first, then the restores.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from devtools.local_postgres import LocalPostgres
from devtools.sandbox import DATABASE
from tests.support.waiting import wait_for

from .conftest import ADDRESSES, BUCKET, ENCRYPTION_KEY, PitrWorld


def server_now(world: PitrWorld) -> datetime:
    return datetime.fromisoformat(
        world.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US+00:00')")
    )


def test_provision_pitr_archives_the_wal_and_takes_a_first_base_backup(pitr_world: PitrWorld) -> None:
    result = pitr_world.task("provision", "--pitr", "--admin-user", pitr_world.sandbox.sshd.user, timeout=600)
    assert ENCRYPTION_KEY not in result.output
    assert "provisioned 1 host(s)" in result.output, result.output
    assert pitr_world.psql("SHOW archive_command").startswith(f"PYTHONPATH={pitr_world.pitr_dir}/code ")
    listed = pitr_world.s3.client().list_objects_v2(Bucket=BUCKET, Prefix="pitr/clicknback/")
    keys = [item["Key"] for item in listed.get("Contents", [])]
    # The first base backup is ours, sealed (ADR 0045): its manifest is written last, so it is complete.
    assert any("/sealed/" in key and key.endswith("/manifest.json") for key in keys), keys
    assert any("/wals/" in key for key in keys) and not any("/base/" in key for key in keys), keys
    assert pitr_world.psql("SELECT last_archived_wal IS NOT NULL FROM pg_stat_archiver") == "t"


def test_health_and_handoff_show_the_archive_lag(pitr_world: PitrWorld, tmp_path) -> None:
    health = pitr_world.task("health")
    assert re.search(r"OK +WAL archive: ok: ", health.output), health.output
    output = tmp_path / "handoff.md"
    pitr_world.task("handoff", "--output", str(output))
    assert re.search(r"- OK +WAL archive: ok: ", output.read_text()), output.read_text()


def test_restore_to_a_time_between_two_writes_finds_exactly_the_first(pitr_world: PitrWorld) -> None:
    pitr_world.psql("CREATE TABLE pitr_marks (note text PRIMARY KEY); ALTER TABLE pitr_marks OWNER TO clicknback")
    between = between_two_writes(pitr_world, "first-write", "second-write")

    result = pitr_world.task("restore", "--to-time", between.isoformat(), timeout=900)
    assert "wallet invariants hold on the copy" in result.output, result.output
    port = int(re.search(r"serves on 127\.0\.0\.1:(\d+)", result.output).group(1))
    data_dir = re.search(r"discard-restore --data-dir (\S+)", result.output).group(1)
    copy = LocalPostgres(pitr_world.sandbox.base_dir / "copy-reader", port=port)
    assert copy.psql("SELECT string_agg(note, ',' ORDER BY note) FROM pitr_marks", DATABASE) == "first-write"
    assert int(copy.psql("SELECT count(*) FROM purchases", DATABASE)) == int(
        pitr_world.psql("SELECT count(*) FROM purchases")
    )

    pitr_world.task("discard-restore", "--data-dir", data_dir)
    assert pitr_world.scratch_folders() == []


def test_verify_backup_pitr_checks_the_wallets_of_a_random_recent_second(pitr_world: PitrWorld) -> None:
    result = pitr_world.task("verify-backup", "--pitr", timeout=900)
    assert re.search(r"verify-backup --pitr: OK at \S+: restored in [\d.]+s, wallet invariants hold", result.output)
    assert ENCRYPTION_KEY not in result.output
    assert pitr_world.scratch_folders() == []  # the drill discards its copy


def between_two_writes(world: PitrWorld, first: str, second: str) -> datetime:
    """Commit `first`, read the server's clock, wait until it moved on, commit `second`."""
    world.psql(f"INSERT INTO pitr_marks VALUES ('{first}')")
    between = server_now(world)
    wait_for(lambda: server_now(world) > between, 10, "the server's clock to move on")
    world.psql(f"INSERT INTO pitr_marks VALUES ('{second}')")
    return between


def test_restore_to_a_time_over_the_live_cluster_keeps_the_old_folder_until_discarded(pitr_world: PitrWorld) -> None:
    between = between_two_writes(pitr_world, "third-write", "fourth-write")
    args = ("restore", "--to-time", between.isoformat(), "--confirm-live")
    dry = pitr_world.task(*args, "--dry-run")
    assert re.search(r"would 1\. take the deploy lock on host-10", dry.output), dry.output
    assert "would 4. [host-10] stop the live cluster: cd / && sudo -n -u" in dry.output
    assert dry.output.rstrip().endswith("dry run: nothing changed")
    assert pitr_world.psql("SELECT count(*) FROM pitr_marks WHERE note = 'fourth-write'") == "1"

    result = pitr_world.task(*args, timeout=900)
    assert "the app is healthy on every host" in result.output, result.output
    marks = pitr_world.psql("SELECT string_agg(note, ',' ORDER BY note) FROM pitr_marks")
    assert marks == "first-write,second-write,third-write"
    assert pitr_world.psql("SHOW archive_mode") == "on" and pitr_world.psql("SELECT pg_is_in_recovery()") == "f"
    assert pitr_world.psql("SELECT count(*) FROM pg_file_settings WHERE name LIKE 'recovery_target%'") == "0"
    ledger = (pitr_world.sandbox.deploy_root(ADDRESSES[0]) / "state" / "ledger.jsonl").read_text()
    assert f"pitr {between.isoformat()}" in ledger.splitlines()[-1] and '"outcome":"ok"' in ledger.splitlines()[-1]
    health = pitr_world.task("health")
    assert re.search(r"OK +WAL archive: ok: ", health.output), health.output

    aside = Path(re.search(r"discard-restore --data-dir (\S+)", result.output).group(1))
    assert aside.name.startswith("data.before-pitr-") and (aside / "PG_VERSION").exists()
    pitr_world.task("discard-restore", "--data-dir", str(aside))
    assert not aside.exists()


def test_health_fails_while_archive_command_fails(pitr_world: PitrWorld) -> None:
    command = pitr_world.psql("SHOW archive_command")
    pitr_world.psql("ALTER SYSTEM SET archive_command = '/bin/false'")
    pitr_world.psql("SELECT pg_reload_conf()")
    try:
        pitr_world.psql("SELECT txid_current()")
        pitr_world.psql("SELECT pg_switch_wal()")
        wait_for(
            lambda: pitr_world.psql("SELECT failed_count FROM pg_stat_archiver") != "0", 60, "archive_command to fail"
        )
        health = pitr_world.task("health", check=False)
        assert health.returncode != 0
        assert re.search(r"FAIL WAL archive: failing: archive_command is failing", health.output), health.output
    finally:
        pitr_world.psql(f"ALTER SYSTEM SET archive_command = '{command.replace(chr(39), chr(39) * 2)}'")
        pitr_world.psql("SELECT pg_reload_conf()")
