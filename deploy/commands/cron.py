"""The deploy user's crontab block: the scheduled jobs and the UTC guards that time them."""

from __future__ import annotations

from deploy.commands.layout import Layout, q
from deploy.commands.ops import OPS_CLI
from deploy.commands.services import start_services_command
from deploy.commands.templates import render
from deploy.inventory import Host

# Debian's cron has no CRON_TZ: it schedules in the host's zone only (crontab(5): "cron will
# only handle tasks in a single timezone"). So every job fires each quarter hour and runs only when
# the UTC clock says so: every real zone's offset is a multiple of 15 minutes, and DST never
# shifts or repeats UTC. Each value is a `date -u` format and the UTC stamp it must print.
CRON_EVERY_QUARTER_HOUR = "*/15 * * * *"
STAMP = "deploy.ops.stamp"  # prefixes each line a job writes to cron.log with the UTC time
UtcGuard = tuple[tuple[str, str, str], ...]  # (`date -u` format, test operator, value), all must hold
BACKUP_UTC_TIMES: dict[str, UtcGuard] = {
    "weekly": (("%u%H%M", "=", "70100"),),  # Sunday 01:00
    "daily": (("%H%M", "=", "0100"),),
    "hourly": (("%M", "=", "00"),),
}
ARCHIVE_LOGS_UTC_TIME: UtcGuard = (("%H%M", "=", "0030"),)
# The maintenance window: the first Sunday of the month (a Sunday, day 1-7), 02:00 UTC.
MAINTENANCE_UTC_TIME: UtcGuard = (("%u%H%M", "=", "70200"), ("%d", "-le", "7"))


def utc_time_guard(guard: UtcGuard) -> str:
    """A shell test that holds when the UTC clock matches `guard`. `%` is escaped: cron turns a
    bare `%` of a crontab line into a newline."""
    return " && ".join(
        f'[ "$(date -u +{date_format.replace("%", chr(92) + "%")})" {op} {value} ]' for date_format, op, value in guard
    )


def crontab_marker(layout: Layout) -> str:
    return f"clicknback {layout.root}"


def crontab_block(layout: Layout, host: Host, database_jobs: bool = True) -> str:
    """Every host archives its own logs and runs the maintenance window for its own steps (its logs,
    its release's dependency audit). The jobs on the shared database (the backup, the window's
    VACUUM/REINDEX, verify-backup and check-wallets) run from one host of the environment only
    (`database_jobs`); the others pass --no-shared-steps, or each would run once per host."""
    cron_log = q(f"{layout.logs}/cron.log")
    # Through the stamp wrapper, every line the job prints lands in cron.log with its UTC time; the
    # redirection keeps what the wrapper itself could say (a broken venv) in the same file.
    ops_prefix = (
        f"cd {q(layout.current)} && ENV_FILE={q(layout.env_file)} ./.venv/bin/python -m {STAMP} {cron_log} "
        f"./.venv/bin/python -m {OPS_CLI}"
    )

    def job(guard: UtcGuard, *commands: str) -> str:
        runs = " && ".join(f"{ops_prefix} {command} >> {cron_log} 2>&1" for command in commands)
        return f"{CRON_EVERY_QUARTER_HOUR} {utc_time_guard(guard)} && {runs}\n"

    jobs = job(ARCHIVE_LOGS_UTC_TIME, "archive-logs")
    if database_jobs:
        jobs += job(BACKUP_UTC_TIMES[host.backup_schedule], "backup --reason scheduled", "prune-backups")
        jobs += job(MAINTENANCE_UTC_TIME, "maintenance")
    else:
        jobs += job(MAINTENANCE_UTC_TIME, "maintenance --no-shared-steps")
    return render(
        "crontab.tmpl",
        marker=crontab_marker(layout),
        start_services=start_services_command(layout),
        jobs=jobs,
    )


CRONTAB_LOCK = "$HOME/.clicknback-crontab.lock"


def crontab_install_command(marker: str, block: str) -> str:
    """Replace this deploy root's marked block in the user's crontab (or drop it: block="").

    Read, edit and write happen in one remote command under flock: deploy roots that share a user
    (the sandbox's two hosts) provision in parallel without losing each other's block.
    """
    keep_others = (
        f"awk -v begin={q('# BEGIN ' + marker)} -v end={q('# END ' + marker)}"
        " '$0==begin{skip=1;next} $0==end{skip=0;next} !skip'"
    )
    return (
        "command -v crontab >/dev/null || { echo 'crontab not found: apt-get install cron' >&2; exit 127; };"
        f' exec 9>>"{CRONTAB_LOCK}" && flock 9'
        f" && {{ crontab -l 2>/dev/null | {keep_others}; printf '%s' {q(block)}; }} | crontab -"
    )
