"""Backups through the invoke tasks over real sshd hosts, as an operator runs them (state flows
from one test to the next, in file order, like an operator session)."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request

import pytest

from devtools.local_postgres import free_port
from server.db_migrations import code_head
from tests.integration.backup.backup_helpers import scratch_databases, table_digests

from .conftest import ADDRESSES, BUCKET, NGINX_PORT, BackupWorld

pytestmark = pytest.mark.e2e
ENCRYPTION_KEY = "e2e-encryption-key-0123456789-abcdefgh"
STATE: dict[str, str] = {}


def listing(world: BackupWorld) -> dict:
    output = world.task("backups", "--json").output
    line = next(line for line in output.splitlines() if '"complete"' in line)
    return json.loads(line[line.index("{") :])


def ledgers(world: BackupWorld) -> list[list]:
    """Every host's ledger entries (a live restore is recorded on each)."""
    from deploy.inventory import load_inventory
    from deploy.session import Session, read_ledger

    with Session(load_inventory(str(world.sandbox.inventory_path)).environment(None)) as session:
        return [read_ledger(remote) for remote in session.remotes]


def ready(address: str, port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/health/ready", timeout=5) as response:
            return response.status
    except OSError:
        return 0


def test_backup_task_runs_on_the_first_host_and_streams_its_output(world: BackupWorld):
    result = world.task("backup")
    assert "[host-6" in result.output and "complete" in result.output
    match = re.search(r"backup (\d{8}T\d{6}Z-[0-9a-f]{6}): complete", result.output)
    assert match, result.output
    STATE["first"] = match.group(1)
    complete = listing(world)["complete"]
    assert [m["backup_id"] for m in complete] == [STATE["first"]]
    assert complete[0]["release"]["version"] == "v1.0.0"  # RELEASE.json of the deployed release
    assert complete[0]["migration_head"] == code_head()


def test_other_host_can_run_it_and_the_list_shows_both(world: BackupWorld):
    result = world.task("backup", "--host", "host-7")
    assert "[host-7" in result.output
    table = world.task("backups").output
    assert "VERIFIED" in table and STATE["first"] in table
    assert len(listing(world)["complete"]) == 2


def test_verify_backup_task_passes_and_is_recorded(world: BackupWorld):
    result = world.task("verify-backup", "--backup", STATE["first"])
    assert f"backup {STATE['first']} PASSED" in result.output
    assert "ok   wallets" in result.output
    assert scratch_databases(world.sandbox.postgres) == []
    verified = {m["backup_id"]: m["verification"] for m in listing(world)["complete"]}
    assert verified[STATE["first"]]["ok"] is True


def test_restore_into_a_new_database_matches_the_live_one(world: BackupWorld):
    world.task("restore", "--backup", STATE["first"], "--target", "e2e_restored")
    assert table_digests(world.sandbox.postgres, "e2e_restored") == table_digests(world.sandbox.postgres, "clicknback")
    world.sandbox.postgres.drop_database("e2e_restored")


def test_restore_without_target_or_confirmation_is_refused(world: BackupWorld):
    result = world.task("restore", "--backup", STATE["first"], check=False)
    assert result.returncode != 0 and "--confirm-live" in result.output


def test_live_restore_stops_the_app_restores_and_comes_back_healthy(world: BackupWorld):
    before = table_digests(world.sandbox.postgres, "clicknback")
    world.psql("INSERT INTO login_attempts (email) VALUES ('after-backup@example.test')")
    result = world.task("restore", "--backup", STATE["first"], "--confirm-live", check=True)
    assert "stopping the app on 2 host(s)" in result.output and "safety backup" in result.output
    assert "the app is healthy on every host" in result.output
    assert table_digests(world.sandbox.postgres, "clicknback") == before
    for address in ADDRESSES:
        assert ready(address, NGINX_PORT) == 200  # through nginx, to whichever instances are live
    safety = [m["backup_id"] for m in listing(world)["complete"] if m["reason"] == "safety"]
    assert len(safety) == 1
    assert "running ops CLI: restore" in result.output and "clicknback-ops" not in result.output
    for entries in ledgers(world):  # the live restore left a trace on every host
        last = entries[-1]
        assert (last.kind, last.outcome, last.backup, last.safety_backup) == (
            "restore",
            "ok",
            STATE["first"],
            safety[0],
        )
        assert last.hosts == ["host-6", "host-7"] and last.release.endswith("-v1.0.0") and last.who
    assert (
        f"live database replaced from backup {STATE['first']}; safety backup {safety[0]}"
        in world.task("releases").output
    )


def _hold_deploy_lock(world: BackupWorld, holder: str) -> None:
    from deploy import commands as cmd
    from deploy.inventory import load_inventory
    from deploy.session import Session, layout

    with Session(load_inventory(str(world.sandbox.inventory_path)).environment(None)) as session:
        remote = session.remotes[1]  # the second host: the restore must check every host's lock
        remote.query(cmd.lock_acquire_command(layout(remote), holder))


def test_target_with_confirm_live_is_refused_before_touching_a_host(world: BackupWorld):
    result = world.task("restore", "--backup", STATE["first"], "--target", "e2e_both", "--confirm-live", check=False)
    assert result.returncode == 1
    assert "ERROR: give --target DB (restore into a new database, no downtime) or --confirm-live" in result.output
    assert "stopping the app" not in result.output and "[host-" not in result.output  # no host was contacted
    assert world.psql("SELECT count(*) FROM pg_database WHERE datname = 'e2e_both'") == "0"


def test_live_restore_is_refused_while_a_deploy_holds_the_lock(world: BackupWorld):
    world.psql("INSERT INTO login_attempts (email) VALUES ('during-deploy@example.test')")
    before = table_digests(world.sandbox.postgres, "clicknback")
    _hold_deploy_lock(world, '{"holder": "deployer@laptop", "operation": "deploy v1.0.1"}')
    try:
        result = world.task("restore", "--backup", STATE["first"], "--confirm-live", check=False)
        assert result.returncode == 1
        assert "the deploy lock is held" in result.output and "deployer@laptop" in result.output
        assert "stopping the app" not in result.output
        assert table_digests(world.sandbox.postgres, "clicknback") == before  # nothing restored
        for address in ADDRESSES:
            assert ready(address, NGINX_PORT) == 200  # nothing stopped
    finally:
        world.task("lock", "--release")
    assert world.task("lock").output.count("free") == 2  # the refused restore left no lock behind


def test_sev1_dropped_live_database_is_restored_with_no_safety_backup(world: BackupWorld):
    world.task("restore", "--backup", STATE["first"], "--target", "e2e_sev1_reference")
    expected = table_digests(world.sandbox.postgres, "e2e_sev1_reference")
    world.sandbox.postgres.drop_database("e2e_sev1_reference")
    backups_before = len(listing(world)["complete"])
    world.psql("DROP DATABASE clicknback WITH (FORCE)", database="postgres")  # the live database is lost

    refused = world.task("restore", "--backup", STATE["first"], "--confirm-live", check=False)
    assert refused.returncode == 1
    assert "the live database does not answer" in refused.output and "nothing was stopped" in refused.output
    assert "--no-safety-backup" in refused.output and "stopping the app" not in refused.output
    # The advice is a command the operator can type on the host, with its real deploy root.
    assert "/current && ENV_FILE=" in refused.output and "-m deploy.ops.cli migrate --status`" in refused.output
    assert "clicknback-ops" not in refused.output

    result = world.task("restore", "--backup", STATE["first"], "--confirm-live", "--no-safety-backup")
    assert "WARNING: --no-safety-backup" in result.output
    assert "the live database clicknback does not exist: creating it" in result.output
    assert "the app is healthy on every host" in result.output
    assert table_digests(world.sandbox.postgres, "clicknback") == expected
    for address in ADDRESSES:
        assert ready(address, NGINX_PORT) == 200
    assert len(listing(world)["complete"]) == backups_before  # no safety backup was taken
    last = ledgers(world)[0][-1]
    assert (last.kind, last.outcome, last.backup, last.safety_backup) == ("restore", "ok", STATE["first"], None)
    assert world.task("lock").output.count("free") == 2


def test_prune_dry_run_then_prune(world: BackupWorld):
    dry = world.task("prune-backups", "--dry-run").output
    assert "retention: keep 28 days, at least 2 backups" in dry
    world.task("prune-backups")
    assert len(listing(world)["complete"]) >= 2


def test_corrupted_object_is_refused_by_the_verify_task(world: BackupWorld):
    newest = listing(world)["complete"][0]
    client = world.s3.client()
    data = bytearray(client.get_object(Bucket=BUCKET, Key=newest["data_key"])["Body"].read())
    data[-10] ^= 0x01
    client.put_object(Bucket=BUCKET, Key=newest["data_key"], Body=bytes(data))
    result = world.task("verify-backup", check=False)
    assert result.returncode == 1
    assert "FAIL checksum: checksum mismatch" in result.output
    restore = world.task("restore", "--backup", newest["backup_id"], "--target", "e2e_corrupt", check=False)
    assert restore.returncode != 0 and "checksum mismatch" in restore.output
    assert world.psql("SELECT count(*) FROM pg_database WHERE datname = 'e2e_corrupt'") == "0"


def test_wrong_encryption_key_is_refused(world: BackupWorld):
    world.set_host_env(BACKUP_ENCRYPTION_KEY=ENCRYPTION_KEY)
    result = world.task("backup")
    assert ENCRYPTION_KEY not in result.output
    encrypted = next(m for m in listing(world)["complete"] if m["encryption"])
    world.set_host_env(BACKUP_ENCRYPTION_KEY="a-different-key-0123456789-abcdefghijk")
    refused = world.task("restore", "--backup", encrypted["backup_id"], "--target", "e2e_wrong_key", check=False)
    assert refused.returncode != 0 and "not the key this backup was encrypted with" in refused.output
    world.set_host_env(BACKUP_ENCRYPTION_KEY=ENCRYPTION_KEY)
    world.task("restore", "--backup", encrypted["backup_id"], "--target", "e2e_right_key")
    world.sandbox.postgres.drop_database("e2e_right_key")
    world.set_host_env(BACKUP_ENCRYPTION_KEY=None)


def test_unreachable_bucket_fails_the_task_and_the_cron_line_says_why(world: BackupWorld):
    world.set_host_env(S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    try:
        result = world.task("backup", check=False)
        assert result.returncode == 1 and "S3 endpoint unreachable" in result.output
        # The crontab's own backup line, run as cron would (as the deploy user, output to cron.log).
        crontab = subprocess.run(
            ["crontab", "-l", "-u", world.sandbox.sshd.user], capture_output=True, text=True, check=True
        ).stdout
        root = str(world.sandbox.deploy_root(ADDRESSES[0]))
        line = next(
            entry
            for entry in crontab.splitlines()
            if " backup " in entry and root in entry and not entry.startswith("#")
        )
        # The job fires every quarter hour and runs only at its UTC time: run what follows the guard.
        command = line.split(None, 5)[5]
        command = command[command.index("cd ") :]
        ran = subprocess.run(
            ["su", "-s", "/bin/sh", "-c", command, world.sandbox.sshd.user], capture_output=True, text=True, timeout=120
        )
        assert ran.returncode != 0
        cron_log = (world.sandbox.deploy_root(ADDRESSES[0]) / "shared" / "logs" / "cron.log").read_text()
        assert "backup: cannot use the bucket: S3 endpoint unreachable" in cron_log.splitlines()[-1]
    finally:
        world.set_host_env(S3_ENDPOINT_URL=world.s3.endpoint_url)
