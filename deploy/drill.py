"""The failover drill: crash the app and the database on a deployed environment, recover, and
prove health, data and a fresh backup, timing each step against the RTO (operation-plan §9.1)."""

from __future__ import annotations

import json as jsonlib
import os
import signal
import subprocess
import time
from collections.abc import Callable

from deploy import commands as cmd
from deploy import reports
from deploy.commands import operations as ocmd
from deploy.errors import DeployError
from deploy.primary import database_host
from deploy.session import Session, current_ops_command, deployed_release, layout, live_ports
from deploy.ssh import Remote


def last_json_line(output: str) -> dict:
    """The JSON object an ops command prints as its last line."""
    return jsonlib.loads(output.strip().splitlines()[-1])


class DrillFailed(DeployError):
    pass


def database_control(
    session: Session, stop: str, start: str, runs_on: str, timeout: int
) -> tuple[Callable[[], str], Callable[[], str]]:
    """The drill's database stop and start: shell commands run on the database host (deploy/primary.py),
    or on this machine when the database table says drill_runs_on = "local". Each answers with its
    output, or the command when it printed nothing."""
    if runs_on == "local":
        return (lambda: _run_here(stop, timeout)), (lambda: _run_here(start, timeout))
    host = database_host(session)
    # The database table's {host} and {address} stand for the host the commands run on.
    stop, start = (c.replace("{host}", host.host.name).replace("{address}", host.host.address) for c in (stop, start))
    return (lambda: host.query(stop).stdout.strip() or stop), (lambda: host.query(start).stdout.strip() or start)


def _run_here(command: str, timeout: int) -> str:
    # A session of its own, killed whole: a shell's children must not outlive a timeout or a Ctrl-C.
    with subprocess.Popen(
        command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except BaseException as error:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            if isinstance(error, subprocess.TimeoutExpired):
                raise DrillFailed(f"{command} did not finish within {timeout}s") from None
            raise
    if process.returncode != 0:
        raise DrillFailed(f"{command} exited with {process.returncode}: {(err or out).strip()}")
    return out.strip() or command


class Drill:
    """The quarterly failover test (plan §9.3), step by step, each one timed."""

    def __init__(
        self, session: Session, stop_database: Callable[[], str], start_database: Callable[[], str], timeout: int
    ):
        self.session, self.timeout = session, timeout
        self.stop_database, self.start_database = stop_database, start_database
        # The database's checks, backup and migrate status run where the database is.
        self.first = database_host(session)
        self.steps: list[dict] = []

    def step(self, name: str, action: Callable[[], str]) -> None:
        self.session.say(f"drill: {name} ...")
        started = time.monotonic()
        try:
            detail = action()
        except Exception as error:
            self.steps.append(
                {
                    "step": name,
                    "status": "failed",
                    "seconds": time.monotonic() - started,
                    "detail": str(error).strip().splitlines()[0][:200] if str(error).strip() else repr(error),
                }
            )
            raise DrillFailed(f"drill step {name!r} failed:\n{error}") from None
        self.steps.append({"step": name, "status": "ok", "seconds": time.monotonic() - started, "detail": detail})
        self.session.say(f"drill: {name}: ok in {self.steps[-1]['seconds']:.1f}s ({detail})")

    def healthy(self) -> str:
        def gate(remote: Remote) -> int:
            host = remote.host
            urls = [host.ready_url_for(p) for p in live_ports(remote)]
            urls.append(f"http://{host.address}:{host.nginx_port}/health/ready")
            for url in urls:
                remote.query(cmd.health_poll_command(url, self.timeout, host.health_interval))
            return len(urls)

        return f"{sum(self.session.parallel(gate))} probes answered 200"

    def row_counts(self) -> dict[str, int]:
        return last_json_line(self.first.query(current_ops_command(self.first, "row-counts")).stdout)

    def crash_app(self) -> str:
        def crash(remote: Remote) -> str:
            killed = remote.query(ocmd.crash_app_command(layout(remote), live_ports(remote))).stdout.strip()
            remote.query(ocmd.wait_until_gone_command(layout(remote)))
            return f"{remote.host.name} {killed}"

        return "; ".join(self.session.parallel(crash))

    def restart_app(self) -> str:
        # What @reboot runs: supervisord, the live instances, nginx (already running: its error is fine).
        self.session.parallel(lambda r: r.query(cmd.start_services_command(layout(r)), check=False))
        return "the @reboot command ran on every host"

    def wait_for_database(self) -> str:
        self.first.query(ocmd.wait_for_database_command(layout(self.first), deployed_release(self.first), self.timeout))
        return "the app's own connection code reaches it"

    def run(self) -> list[dict]:
        before: dict[str, int] = {}

        def baseline() -> str:
            nonlocal before
            self.healthy()
            before = self.row_counts()
            return f"healthy; {sum(before.values())} rows in {len(before)} tables"

        def verify_data() -> str:
            after = self.row_counts()
            lost, grown = reports.row_count_changes(before, after)
            if lost:
                raise DrillFailed(f"rows lost in the crash: {lost} (before {before}, after {after})")
            wallets = self.first.query(current_ops_command(self.first, "check-wallets")).stdout.strip().splitlines()[-1]
            status = last_json_line(self.first.query(current_ops_command(self.first, "migrate", "--status")).stdout)
            if status.get("pending"):
                raise DrillFailed(f"migrations pending after recovery: {status['pending']}")
            activity = f" (app activity since: {', '.join(f'{k} +{v}' for k, v in grown.items())})" if grown else ""
            return (
                f"all {sum(before.values())} rows still there{activity}; {wallets}; schema at {status.get('db_head')}"
            )

        def fresh_backup() -> str:
            output = self.first.query(current_ops_command(self.first, "backup")).stdout.strip().splitlines()
            verified = self.first.query(current_ops_command(self.first, "verify-backup")).stdout.strip().splitlines()
            # Never a blind cut: a digest cut short with no marker reads as a whole one.
            return (
                f"{reports.shorten(output[-1], 300) if output else 'backup done'}; "
                f"{reports.shorten(verified[-1], 200) if verified else 'verified'}"
            )

        self.step("baseline (health, row counts)", baseline)
        self.step("crash: SIGKILL app and supervisord", self.crash_app)
        self.step("crash: stop the database abruptly", self.stop_database)
        self.step("database back", self.start_database)
        self.step("database accepts the app's connections", self.wait_for_database)
        self.step("app back (the @reboot command)", self.restart_app)
        self.step("health gate on every instance and nginx", self.healthy)
        self.step("data: row counts, wallets, schema", verify_data)
        self.step("fresh backup and restore drill", fresh_backup)
        return self.steps
