"""Pure builders of the remote commands the operations tasks send (stats, maintenance, drill).

Like deploy/commands/: strings only, unit-tested with golden strings; the tasks run them.
"""

from __future__ import annotations

from deploy import commands as cmd
from deploy.commands import Layout, q
from deploy.ops.maintenance.model import STEP_NAMES, parse_until


def stats_args(window_hours: float, with_database: bool, only_logs: bool = False, end: str | None = None) -> list[str]:
    args = ["stats", "--window-hours", f"{window_hours:g}", *(["--end", end] if end else [])]
    if only_logs:
        args.append("--only-logs")
    elif not with_database:
        args.append("--no-database")
    return args


def archive_logs_args(dry_run: bool) -> list[str]:
    """No --host-label: the host files its archives under the same name cron uses (its hostname)."""
    return ["archive-logs", *(["--dry-run"] if dry_run else [])]


def maintenance_args(shared_steps: bool, until: str | None, budget: float | None, skip: list[str]) -> list[str]:
    """The first host runs every step; the others only what is theirs (logs, their release's audit).

    Bad input is a ValueError here, on the laptop, before any SSH (the hosts would refuse it too,
    but only after connecting, and one host at a time).
    """
    if until and budget is not None:
        raise ValueError("--until and --budget are alternatives: give one")
    if until:
        parse_until(until)
    unknown = [step for step in skip if step not in STEP_NAMES]
    if unknown:
        raise ValueError(f"--skip {unknown[0]!r}: not a step (steps: {', '.join(STEP_NAMES)})")
    args = ["maintenance"]
    if until:
        args += ["--until", until]
    if budget is not None:
        args += ["--budget", f"{budget:g}"]
    for step in skip:
        args += ["--skip", step]
    if not shared_steps:
        args.append("--no-shared-steps")
    return args


def read_release_json_command(layout: Layout) -> str:
    """RELEASE.json of the current release, or nothing before the first deploy."""
    return f"cat {q(layout.current + '/RELEASE.json')} 2>/dev/null || true"


def read_maintenance_record_command(layout: Layout) -> str:
    """The last maintenance window's record on this host, or nothing before the first window."""
    return f"cat {q(layout.maintenance_record)} 2>/dev/null || true"


def supervisord_pid_file(layout: Layout) -> str:
    return f"{layout.root}/supervisor/supervisord.pid"


def crash_app_command(layout: Layout, ports: tuple[int, ...]) -> str:
    """SIGKILL supervisord and every app instance of this deploy root (no drain: a crash).

    The instance pids come from supervisord before it dies; prints what it killed.
    """
    pids = " ".join(
        f"$({cmd.supervisorctl_command(layout, 'pid', cmd.program_name(port))} 2>/dev/null)" for port in ports
    )
    pid_file = q(supervisord_pid_file(layout))
    return (
        f'victims="$(cat {pid_file} 2>/dev/null) {pids}";'
        " killed='';"
        " for pid in $victims; do case \"$pid\" in *[!0-9]*|'') continue;; esac;"
        ' if kill -9 "$pid" 2>/dev/null; then killed="$killed $pid"; fi; done;'
        ' echo "killed:$killed"'
    )


def wait_until_gone_command(layout: Layout, timeout: int = 30) -> str:
    """Wait until supervisord's socket no longer answers (the crash really happened)."""
    return (
        f"deadline=$(( $(date +%s) + {int(timeout)} )); while {cmd.supervisorctl_command(layout, 'pid')}"
        f' >/dev/null 2>&1; do [ "$(date +%s)" -ge "$deadline" ] && exit 1; sleep 0.2; done'
    )


def wait_for_database_command(layout: Layout, rel_id: str, timeout: int) -> str:
    """Retry `migrate --status` until the database answers (it runs the app's own connection code)."""
    status = cmd.migrate_status_command(layout, rel_id)
    return (
        f"deadline=$(( $(date +%s) + {int(timeout)} )); until ( {status} ) >/dev/null 2>&1; do"
        f' if [ "$(date +%s)" -ge "$deadline" ]; then echo \'database still down after {int(timeout)}s\'; exit 1; fi;'
        " sleep 0.5; done; echo database-up"
    )
