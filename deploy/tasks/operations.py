"""Invoke tasks: stats, maintenance, archive-logs, handoff, drill (runbooks: docs/observability.md,
docs/maintenance.md, docs/logs.md, docs/on-call.md, docs/incidents.md).

The work happens on the hosts, in the VPS-side ops CLI (deploy/ops/stats/, maintenance/, logs/)
of each host's current release; these tasks open SSH, run it, and merge or print what it
returns. The numbers and the text are built by pure modules (deploy/ops/stats/model.py,
deploy/reports/, deploy/commands/operations.py).
"""

from __future__ import annotations

import json as jsonlib
import sys
from datetime import UTC, datetime
from pathlib import Path

from invoke import Exit, task

from deploy import commands as cmd
from deploy import ledger, local_git, reports
from deploy.commands import operations as ocmd
from deploy.drill import Drill, database_control, last_json_line
from deploy.errors import DeployError
from deploy.failover_drill import report_line, run_failover_drill
from deploy.ops.stats import model as stats_model
from deploy.primary import database_host
from deploy.session import (
    HostResult,
    Session,
    current_ops_command,
    current_release,
    deployed_release,
    host_ops_command,
    layout,
    live_ports,
    read_ledger,
)
from deploy.ssh import Remote
from deploy.standby import read_replication
from deploy.tasks import OperatorTask
from deploy.tasks import pitr as pitr_tasks
from deploy.tasks.backup import _chosen
from deploy.tasks.release import _help, _session, exit_if_hosts_failed, report_failed_hosts

FULL_SYSTEM_FAILURE_RTO_S = 3600  # operation-plan §9.1
# Defaults are relative to the repository (the folder of tasks.py), not to where invoke runs.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HISTORY = ".local/stats-history-{env}.jsonl"
DEFAULT_KNOWN_ISSUES = "docs/known-issues.md"
DEFAULT_ON_CALL = "docs/on-call.md"
HOST_HELP = (
    "host that runs the shared steps (default: the database host: the last failover's promoted host, else the first)"
)


# -- stats -----------------------------------------------------------------------------------


def project_path(value: str) -> Path:
    """A path option: absolute or ~ as given, else relative to the repository root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def collect_stats_each(
    session: Session, window_hours: float, only_logs: bool = False, end: str | None = None
) -> list[HostResult[dict]]:
    """`clicknback-ops stats` on every host at once, every host's outcome kept (one may be down);
    the database figures come from the database host only (deploy/primary.py)."""
    first = database_host(session)

    def one(remote: Remote) -> dict:
        args = ocmd.stats_args(window_hours, with_database=remote is first, only_logs=only_logs, end=end)
        return last_json_line(remote.query(current_ops_command(remote, *args)).stdout)

    return session.each(one)


def collect_stats(
    session: Session, window_hours: float, only_logs: bool = False, end: str | None = None
) -> dict[str, dict]:
    """The stats of the hosts that answered, by host name."""
    return {
        r.remote.host.name: r.value or {} for r in collect_stats_each(session, window_hours, only_logs, end) if r.ok
    }


@task(
    help=_help(
        window_hours="request logs of the last N hours, a number above 0 (default 24)",
        history="local JSON-lines history to append to (default .local/stats-history-<env>.jsonl "
        "in the repository; a relative path is taken from the repository root)",
        html="also write a self-contained HTML report with charts of the whole history to this file",
        json="print the merged figures as JSON instead of the table",
        end="end of the log window, ISO-8601 (default now), e.g. to look at an incident's hours",
    )
)
def stats(c, env=None, inventory=None, window_hours=24.0, history=None, html=None, json=False, end=None):
    """Host, app, database and request-log figures of every host, checked against p99 < 200 ms."""
    if end:
        try:
            datetime.fromisoformat(end)
        except ValueError:
            raise Exit(
                f"ERROR: --end {end!r}: expected an ISO-8601 time, e.g. 2026-01-02T03:00:00+00:00", code=1
            ) from None
    _check_output_folder(html, "--html")
    with _session(env, inventory, out=sys.stderr if json else None) as session:
        name = session.environment.name
        results = collect_stats_each(session, float(window_hours), end=end)
        if not any(r.ok for r in results):
            failed = report_failed_hosts(session, results)
            exit_if_hosts_failed(failed, "stats")
        merged = stats_model.merge_reports({r.remote.host.name: r.value for r in results if r.ok})
        merged["replication"] = read_replication(session)
    now = datetime.now(UTC)
    text = reports.stats_text(merged, name)
    print(jsonlib.dumps(merged, indent=2, sort_keys=True) if json else text)
    failed = report_failed_hosts(session, results)
    if failed:
        # A partial sample would skew the history's trend lines: it is shown, not recorded.
        exit_if_hosts_failed(failed, "stats (not added to the history)")
    history_path = project_path(history or DEFAULT_HISTORY.format(env=name))
    history_path.parent.mkdir(parents=True, exist_ok=True)
    with history_path.open("a") as handle:
        handle.write(jsonlib.dumps(stats_model.history_record(merged, name, now), sort_keys=True) + "\n")
    if html:
        records = stats_model.parse_history(history_path.read_text())
        _write(Path(html), reports.history_html(records, name, now, text), "--html")
        print(f"wrote {html} ({len(records)} sample(s) from {history_path})", file=sys.stderr)


# -- archive-logs and maintenance ------------------------------------------------------------


@task(help=_help(dry_run="say what would be compressed, uploaded and deleted; change nothing"))
def archive_logs(c, env=None, inventory=None, dry_run=False):
    """Compress rotated app logs on every host, upload them (verified) to the bucket, apply retention."""
    with _session(env, inventory) as session:
        session.connect(deployed_release)  # every host reached before any host archives
        statuses = session.parallel(lambda r: r.stream(current_ops_command(r, *ocmd.archive_logs_args(dry_run))))
    failed = [r.host.name for r, s in zip(session.remotes, statuses) if s != 0]
    if failed:
        raise Exit(f"ERROR: archive-logs failed on {', '.join(failed)} (their files are kept; see above)", code=1)


@task(
    iterable=["skip"],
    help=_help(
        host=HOST_HELP,
        until="end of the window, HH:MM UTC (default 03:00, as cron runs it)",
        budget="run for at most this many minutes from now, a number above 0 (for a run outside the window)",
        skip="--skip=STEP leaves a step out; repeat it for several: vacuum-analyze, reindex, archive-logs, "
        "verify-backup, check-wallets, dependency-audit",
    ),
)
def maintenance(c, env=None, inventory=None, host=None, until=None, budget=0.0, skip=None):
    """Run the maintenance window now: vacuum, reindex, archive logs, verify backup, wallets, audit."""
    budget = float(budget) if budget else None  # 0.0: no budget given (the parser refuses 0 and below)
    try:
        ocmd.maintenance_args(True, until, budget, list(skip or []))  # checks the input before any SSH
    except ValueError as error:
        raise Exit(f"ERROR: {error}", code=1) from None
    with _session(env, inventory) as session:
        first = _chosen(session, host)
        session.connect(deployed_release)  # every host reached before the window starts anywhere
        failed = []
        for remote in [first] + [r for r in session.remotes if r is not first]:
            args = ocmd.maintenance_args(remote is first, until, budget, list(skip or []))
            if remote.stream(current_ops_command(remote, *args)) != 0:
                failed.append(remote.host.name)
    if failed:
        raise Exit(f"ERROR: a maintenance step failed on {', '.join(failed)} (see the report above)", code=1)


# -- handoff ---------------------------------------------------------------------------------


def _probe_host(remote: Remote) -> list[dict]:
    host = remote.host
    urls = []
    for port in live_ports(remote):
        urls += [
            (f"{cmd.program_name(port)} live", host.live_url_for(port)),
            (f"{cmd.program_name(port)} ready", host.ready_url_for(port)),
        ]
    urls.append(("nginx ready", f"http://{host.address}:{host.nginx_port}/health/ready"))
    probes = []
    for name, url in urls:
        answer = remote.query(cmd.probe_command(url), check=False).stdout.strip()
        probes.append({"name": name, "ok": answer.split(" ", 1)[0] == "200", "answer": answer})
    return probes


def _host_state(remote: Remote) -> dict:
    current = current_release(remote)
    metadata = {}
    raw = remote.query(ocmd.read_release_json_command(layout(remote))).stdout.strip()
    if raw:
        metadata = jsonlib.loads(raw)
    return {
        "name": remote.host.name,
        "release": current,
        "version": metadata.get("version"),
        "commit": metadata.get("commit"),
        "deployed_at": metadata.get("deployed_at"),
        "health": _probe_host(remote),
        "maintenance": reports.parse_maintenance_record(
            remote.query(ocmd.read_maintenance_record_command(layout(remote))).stdout
        ),
    }


def _recent_ledger(remotes: list[Remote], count: int) -> list[ledger.LedgerEntry]:
    seen, entries = set(), []
    for remote in remotes:
        for entry in read_ledger(remote):
            key = (entry.when, entry.kind, entry.release, entry.outcome)
            if key not in seen:
                seen.add(key)
                entries.append(entry)
    return sorted(entries, key=lambda e: e.when)[-count:]


def backup_summary(listing: dict) -> dict:
    """The newest complete backup and the newest verification among them (from `backups --json`)."""
    complete = listing.get("complete", [])
    last = complete[0] if complete else None
    verified = [dict(m["verification"], backup_id=m["backup_id"]) for m in complete if m.get("verification")]
    verified.sort(key=lambda v: v.get("verified_at", ""))
    return {"last_backup": last, "last_verified": verified[-1] if verified else None}


def _unreachable_host(result: HostResult) -> dict:
    return {
        "name": result.remote.host.name,
        "release": None,
        "unreachable": f"{result.status}: {result.problem}",
        "health": [{"name": "ssh", "ok": False, "answer": f"{result.status}: {result.problem}"}],
    }


def gather_handoff(session: Session, known_issues: Path, on_call: Path) -> dict:
    # Read first: a missing file is an error before any SSH, not a handoff without the section.
    issues_text, on_call_text = _read_required(known_issues, "--known-issues"), _read_required(on_call, "--on-call")
    first = database_host(session)
    results = session.each(_host_state)
    hosts = [r.value if r.ok else _unreachable_host(r) for r in results]
    reachable = [r.remote for r in results if r.ok]
    try:
        backups = backup_summary(last_json_line(first.query(current_ops_command(first, "backups", "--json")).stdout))
    except Exception as error:  # noqa: BLE001 - the handoff still goes out, saying what is missing
        backups = {"error": str(error).splitlines()[0][:300]}
    try:
        archive = pitr_tasks.read_archive_lag(first, current_release(first))
    except Exception as error:  # noqa: BLE001 - as above
        archive = {"error": str(error).splitlines()[0][:300]}
    try:
        requests = stats_model.merge_reports(collect_stats(session, 24.0, only_logs=True))["requests"]
    except Exception:  # noqa: BLE001
        requests = None
    return {
        "environment": session.environment.name,
        "generated_at": datetime.now(UTC),
        "operator": local_git.operator(),
        "hosts": hosts,
        "ledger": _recent_ledger(reachable, 10),
        "backups": backups,
        "wal_archive": archive,
        "requests": requests,
        "known_issues": reports.known_issues_list(issues_text),
        "next_window": reports.next_maintenance_window(datetime.now(UTC)),
        "escalation": reports.markdown_section(on_call_text, "Escalation path"),
        # Cron runs it on the database host (provision puts it there); this is the form an operator can type there.
        "maintenance_host": first.host.name,
        "maintenance_command": host_ops_command(first.host.deploy_root, "maintenance"),
        "unreachable": [r.remote.host.name for r in results if not r.ok],
    }


def _check_output_folder(output: str | None, flag: str) -> None:
    """Before any SSH: a report gathered for a file that cannot be written would be lost."""
    if output and not Path(output).expanduser().resolve().parent.is_dir():
        raise DeployError(f"{flag} {output}: the folder {Path(output).expanduser().resolve().parent} does not exist")


def _write(path: Path, text: str, flag: str) -> None:
    try:
        path.write_text(text)
    except OSError as error:
        raise DeployError(f"{flag} {path}: {(error.strerror or str(error)).lower()}") from None


def _read_required(path: Path, flag: str) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise DeployError(f"{flag} {path}: {(error.strerror or str(error)).lower()}") from None


@task(
    help=_help(
        output="write the Markdown to this file instead of printing it",
        known_issues="the team's known-issues file (default docs/known-issues.md; a relative path is taken "
        "from the repository root; a missing file is an error)",
        on_call="the on-call runbook whose 'Escalation path' section is quoted (default docs/on-call.md, "
        "from the repository root)",
    )
)
def handoff(c, env=None, inventory=None, output=None, known_issues=DEFAULT_KNOWN_ISSUES, on_call=DEFAULT_ON_CALL):
    """The on-call handoff in Markdown: releases, deploys, health, backups, 24 h errors and p99, issues, maintenance."""
    _check_output_folder(output, "--output")
    with _session(env, inventory) as session:
        data = gather_handoff(session, project_path(known_issues), project_path(on_call))
        text = reports.handoff_markdown(data)
    if output:
        _write(Path(output), text, "--output")
        print(f"wrote {output}", file=sys.stderr)
    else:
        print(text)
    # Written all the same (the reachable hosts matter most then), but the exit status says so.
    exit_if_hosts_failed(data["unreachable"], "the handoff")


# -- drill -----------------------------------------------------------------------------------


@task(
    klass=OperatorTask,
    short_flags={"db_stop": "b", "db_start": "t", "timeout": "m"},  # fixed: operators' scripts use them
    help=_help(
        db_stop="command that kills the database abruptly (default: the inventory's database.kill, else "
        "sudo -n systemctl kill --signal=SIGKILL postgresql@15-main); it runs on the database host, or on this "
        'machine where the database table says drill_runs_on = "local"',
        db_start="command that starts it again (default: the inventory's database.start, else "
        "sudo -n systemctl start postgresql@15-main); it runs where --db-stop does",
        timeout="seconds each recovery wait may take, a whole number above 0 (default 120)",
        failover="instead: SIGKILL the primary under purchase ingestion, `failover` to the standby, report "
        "RTO, RPO and the acknowledged purchases lost (docs/disaster-recovery.md)",
    ),
)
def drill(c, env=None, inventory=None, db_stop=None, db_start=None, timeout=120, failover=False):
    """Failover drill: crash app and database, recover, verify health, data, backup, time it.

    Runs only where the environment has allow_drill = true, or on a sandbox whose hosts are all
    loopback addresses; never on an environment named like production (prod, production, live).
    """
    with _session(env, inventory) as session:
        environment = session.environment
        refusal = environment.drill_refusal()
        if refusal:
            raise DeployError(refusal)
        if failover:
            session.say(report_line(run_failover_drill(session, timeout=int(timeout))))
            return
        stop, start = database_control(
            session,
            db_stop or environment.database.kill,
            db_start or environment.database.start,
            environment.database.drill_runs_on,
            int(timeout),
        )
        drill_run = Drill(session, stop, start, int(timeout))
        finished = False
        try:
            drill_run.run()
            finished = True
        finally:
            if not finished and not any(step["status"] == "failed" for step in drill_run.steps):
                # Stopped between steps (Ctrl-C, a lost connection): the report must not read "within".
                drill_run.steps.append(
                    {
                        "step": "(interrupted)",
                        "status": "failed",
                        "seconds": 0.0,
                        "detail": "the drill stopped before finishing",
                    }
                )
            session.say("drill report (RTO for a full system failure: 1 hour, operation-plan §9.1)")
            session.say(reports.steps_table(drill_run.steps, FULL_SYSTEM_FAILURE_RTO_S))


TASKS = [stats, archive_logs, maintenance, handoff, drill]


if __name__ == "__main__":
    # `python -m deploy.tasks.operations TASK ...`: these tasks alone, without the rest of tasks.py.
    from invoke import Collection, Program

    Program(
        namespace=Collection(*(OperatorTask.adopt(t) for t in TASKS)), binary="python -m deploy.tasks.operations"
    ).run()
