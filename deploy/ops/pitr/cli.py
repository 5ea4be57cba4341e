"""`python3 -m deploy.ops.pitr.cli`: base backups and point-in-time restores on the database host.

Runs as PostgreSQL's account with the system python3 (like archive_command), from the copy of this
package that `provision --system` installs, so it works whichever release is current:

    sudo -n -u postgres env PYTHONPATH=/usr/local/lib/clicknback-pitr python3 -m deploy.ops.pitr.cli \
        --env-file /etc/clicknback/pitr.env restore --to-time 2026-12-06T10:15:00Z --data-dir D --port P

Every command prints one JSON line on success; a failure is one line on stderr and exit 1.
A restore always goes into a new folder and starts a scratch server on its own port and socket:
the live cluster is never touched here (the live-host restore swaps folders around this).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from deploy.ops.pitr import runner
from deploy.ops.pitr.barman import PitrSettingsError, load_pitr_settings, parse_target_time, wal_command
from deploy.ops.pitr.wal import read_env_file

SCRATCH_MARKER = "clicknback-pitr-scratch"
# What a live restore appends to postgresql.auto.conf, reset once the cluster promoted.
RECOVERY_NAMES = (
    "restore_command",
    "recovery_target_timeline",
    "recovery_target_time",
    "recovery_target_inclusive",
    "recovery_target_action",
)
DEFAULT_BINDIR = runner.DEFAULT_BINDIR
# Debian keeps postgresql.conf and pg_hba.conf in /etc, outside the data folder the backup holds.
# What the server answers while it replays with hot_standby off: wait, do not fail.
REPLAYING = ("starting up", "not accepting connections", "not yet accepting connections")
SCRATCH_HBA = "local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n"


def _settings(args: argparse.Namespace):
    return load_pitr_settings(read_env_file(args.env_file))


def _psql(bindir: str, data_dir: Path, port: int, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [f"{bindir}/psql", "-X", "-qAt", "-U", "postgres", "-h", str(data_dir), "-p", str(port), "-d", "postgres"]
        + ["-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
    )


def start_scratch(bindir: str, data_dir: Path, port: int, timeout_s: float) -> float:
    """Start PostgreSQL on the restored folder and wait until replay ends and it promotes."""
    for name, text in (("postgresql.conf", ""), ("pg_hba.conf", SCRATCH_HBA), ("pg_ident.conf", "")):
        if not (data_dir / name).exists():
            (data_dir / name).write_text(text)
    # hot_standby off: replay then needs no setting at least as large as the primary's (the scratch
    # server has defaults), and nobody reads the copy before it reached its target.
    options = (
        f"-c hot_standby=off -c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data_dir} "
        f"-c hba_file={data_dir}/pg_hba.conf -c ident_file={data_dir}/pg_ident.conf"
    )
    started = time.monotonic()
    log = Path(str(data_dir) + ".log")
    result = subprocess.run(
        [f"{bindir}/pg_ctl", "start", "-D", str(data_dir), "-l", str(log), "-o", options, "-w"]
        + ["-t", str(int(timeout_s))],
        capture_output=True,
        text=True,
        timeout=timeout_s + 30,
    )
    if result.returncode != 0:
        tail = " | ".join(log.read_text(errors="replace").splitlines()[-6:]) if log.exists() else result.stderr
        raise runner.PitrRunError(f"the restored copy did not start: {tail}")
    deadline = started + timeout_s
    while True:
        answer = _psql(bindir, data_dir, port, "SELECT pg_is_in_recovery()")
        if answer.returncode == 0 and answer.stdout.strip() == "f":
            break
        if answer.returncode != 0 and not any(words in answer.stderr for words in REPLAYING):
            raise runner.PitrRunError(f"the restored copy does not answer: {answer.stderr.strip()[:300]}")
        if time.monotonic() > deadline:
            raise runner.PitrRunError(
                f"the restored copy did not finish replay in {timeout_s:.0f}s (see {data_dir}.log)"
            )
        time.sleep(0.5)
    return time.monotonic() - started


def cmd_base_backup(args: argparse.Namespace) -> dict:
    settings = _settings(args)
    started = time.monotonic()
    manifest = runner.take_base_backup(settings, args.host, args.port, args.user, None, args.bindir)
    backup_seconds = time.monotonic() - started
    kept = runner.apply_retention(settings, None)
    return {
        "backup_id": manifest.backup_id,
        "size_bytes": manifest.size_bytes,
        "encrypted": manifest.encrypted,
        "backup_seconds": round(backup_seconds, 1),
        "seconds": round(time.monotonic() - started, 1),
        "backups": kept["kept"],
        "retention": kept,
    }


def cmd_backups(args: argparse.Namespace) -> dict:
    return {"backups": runner.list_backups(_settings(args), None)}


def cmd_restore(args: argparse.Namespace) -> dict:
    if bool(args.to_time) == bool(args.to_latest):
        raise PitrSettingsError("restore takes --to-time TIME or --to-latest (one of them)")
    target = parse_target_time(args.to_time) if args.to_time else None
    settings = _settings(args)
    data_dir = Path(args.data_dir)
    restore_command = wal_command(sys.executable, args.code_dir, args.env_file, "fetch")
    started = time.monotonic()
    prepared = runner.prepare_restore(settings, data_dir, target, restore_command, None)
    (data_dir / SCRATCH_MARKER).write_text(prepared.backup_id + "\n")
    fetched = time.monotonic() - started
    replayed = start_scratch(args.bindir, data_dir, args.port, args.timeout)
    return {
        "backup_id": prepared.backup_id,
        "target": target.isoformat() if target else "latest",
        "data_dir": str(data_dir),
        "port": args.port,
        "base_backup_seconds": round(fetched, 1),
        "replay_seconds": round(replayed, 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def _psql_cluster(args: argparse.Namespace, sql: str) -> str:
    result = subprocess.run(
        [f"{args.bindir}/psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", args.host, "-p", str(args.port)]
        + ["-U", "postgres", "-d", "postgres", "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    if result.returncode != 0:
        raise runner.PitrRunError(f"the cluster did not answer: {result.stderr.strip()[:300]}")
    return result.stdout.strip()


def cmd_close_segment(args: argparse.Namespace) -> dict:
    """Commit a marker, switch to a new WAL segment and wait until the archiver shipped the old one.

    A replay to a time stops at the first commit after it; PostgreSQL refuses a target it never
    passes, so the marker makes every time up to `marked_at` reachable, even on an idle database.
    """
    started = time.monotonic()
    marked_at = _psql_cluster(
        args,
        "SELECT txid_current(), to_char(clock_timestamp() AT TIME ZONE 'UTC', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\')',
    ).split("|")[1]
    segment = _psql_cluster(args, "SELECT pg_walfile_name(pg_switch_wal())")
    deadline = started + args.timeout
    while True:
        row = _psql_cluster(
            args, "SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, '') FROM pg_stat_archiver"
        )
        last, failed = row.split("|")
        if last and last[8:] >= segment[8:]:
            break
        if time.monotonic() > deadline:
            why = f" (archive_command last failed on {failed})" if failed else ""
            raise runner.PitrRunError(f"segment {segment} not archived within {args.timeout:.0f}s{why}")
        time.sleep(0.2)
    return {"marked_at": marked_at, "segment": segment, "seconds": round(time.monotonic() - started, 1)}


def cmd_restore_live(args: argparse.Namespace) -> dict:
    """Lay the archive at a time into the stopped live cluster's folder, keeping the old one aside.

    The caller stopped the cluster and starts it afterwards (its service manager owns it): PostgreSQL
    then replays to the target and promotes. On a failure here the old folder is put back.
    """
    if bool(args.to_time) == bool(args.to_latest):
        raise PitrSettingsError("restore-live takes --to-time TIME or --to-latest (one of them)")
    target = parse_target_time(args.to_time) if args.to_time else None
    data_dir = Path(args.data_dir)
    if not (data_dir / "PG_VERSION").exists():
        raise runner.PitrRunError(f"{data_dir} holds no cluster (no PG_VERSION): not the live data folder")
    if (data_dir / "postmaster.pid").exists():
        raise runner.PitrRunError(f"the cluster in {data_dir} is running (postmaster.pid): stop it first")
    settings = _settings(args)
    aside = data_dir.with_name(f"{data_dir.name}.before-pitr-{args.stamp}")
    restore_command = wal_command(sys.executable, args.code_dir, args.env_file, "fetch")
    started = time.monotonic()
    data_dir.rename(aside)
    try:
        prepared = runner.prepare_restore(settings, data_dir, target, restore_command, None, live=True)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        aside.rename(data_dir)
        raise
    # discard-restore deletes a folder only with this marker: the old data, once the operator is sure.
    (aside / SCRATCH_MARKER).write_text(f"live data before the point-in-time restore {args.stamp}\n")
    return {
        "backup_id": prepared.backup_id,
        "target": target.isoformat() if target else "latest",
        "data_dir": str(data_dir),
        "aside": str(aside),
        "base_backup_seconds": round(time.monotonic() - started, 1),
    }


def cmd_wait_primary(args: argparse.Namespace) -> dict:
    """Wait until the restarted cluster finished replay and promoted, then drop the recovery settings."""
    started = time.monotonic()
    while True:
        try:
            if _psql_cluster(args, "SELECT pg_is_in_recovery()") == "f":
                break
        except runner.PitrRunError:
            pass  # starting up, or replaying with hot_standby off
        if time.monotonic() - started > args.timeout:
            raise runner.PitrRunError(f"the cluster did not finish replay within {args.timeout:.0f}s")
        time.sleep(0.5)
    for name in RECOVERY_NAMES:
        _psql_cluster(args, f"ALTER SYSTEM RESET {name}")
    _psql_cluster(args, "SELECT pg_reload_conf()")
    return {"promoted": True, "seconds": round(time.monotonic() - started, 1)}


def cmd_discard(args: argparse.Namespace) -> dict:
    """Stop and delete a scratch copy; refuses a folder this CLI did not restore."""
    data_dir = Path(args.data_dir)
    if not (data_dir / SCRATCH_MARKER).exists():
        raise runner.PitrRunError(f"{data_dir} is not a scratch restore (no {SCRATCH_MARKER}): not deleting it")
    subprocess.run(
        [f"{args.bindir}/pg_ctl", "stop", "-D", str(data_dir), "-m", "fast", "-w"], capture_output=True, timeout=120
    )
    shutil.rmtree(data_dir)
    Path(str(data_dir) + ".log").unlink(missing_ok=True)
    try:
        data_dir.parent.rmdir()  # the restore-STAMP folder, when nothing else is in it
    except OSError:
        pass
    return {"discarded": str(data_dir)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pitr")
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--bindir", default=DEFAULT_BINDIR)
    sub = parser.add_subparsers(dest="command", required=True)
    backup = sub.add_parser("base-backup", help="take a sealed base backup, then apply the retention policy")
    backup.add_argument("--host", default="/var/run/postgresql")
    backup.add_argument("--port", type=int, default=5432)
    backup.add_argument("--user", default="postgres")
    backup.set_defaults(handler=cmd_base_backup)
    sub.add_parser("backups", help="the base backups in the archive").set_defaults(handler=cmd_backups)
    close = sub.add_parser("close-segment", help="commit a marker, switch WAL, wait until it is archived")
    close.add_argument("--host", default="/var/run/postgresql")
    close.add_argument("--port", type=int, default=5432)
    close.add_argument("--timeout", type=float, default=120)
    close.set_defaults(handler=cmd_close_segment)
    restore = sub.add_parser("restore", help="restore to a time (or the archive's end) into a scratch server")
    restore.add_argument("--to-time")
    restore.add_argument("--to-latest", action="store_true")
    restore.add_argument("--data-dir", required=True)
    restore.add_argument("--port", type=int, required=True)
    restore.add_argument("--code-dir", default=str(Path(__file__).resolve().parents[3]))
    restore.add_argument("--timeout", type=float, default=3600)
    restore.set_defaults(handler=cmd_restore)
    live = sub.add_parser("restore-live", help="restore into the stopped live cluster's folder (old one kept aside)")
    live.add_argument("--to-time")
    live.add_argument("--to-latest", action="store_true")
    live.add_argument("--data-dir", required=True)
    live.add_argument("--stamp", required=True)
    live.add_argument("--code-dir", default=str(Path(__file__).resolve().parents[3]))
    live.set_defaults(handler=cmd_restore_live)
    primary = sub.add_parser("wait-primary", help="wait until the restored live cluster promoted")
    primary.add_argument("--host", default="/var/run/postgresql")
    primary.add_argument("--port", type=int, default=5432)
    primary.add_argument("--timeout", type=float, default=3600)
    primary.set_defaults(handler=cmd_wait_primary)
    discard = sub.add_parser("discard", help="stop and delete a scratch restore")
    discard.add_argument("--data-dir", required=True)
    discard.set_defaults(handler=cmd_discard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        print(json.dumps(args.handler(args), sort_keys=True))
        return 0
    except (PitrSettingsError, runner.PitrRunError, OSError, subprocess.SubprocessError) as error:
        print(f"pitr {args.command}: {type(error).__name__}: {str(error)[:500]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
