"""Pure parts of the maintenance window: its end, which steps still fit, and the dependency audit.

The window is operation-plan §6.1's first Sunday 02:00-03:00 UTC; cron starts `maintenance` at
02:00 and every step must be over by the end. A step starts only when its estimated duration still
fits before the end; the ones that do not are reported as skipped, never silently dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

DEFAULT_UNTIL = "03:00"
SAFETY_MARGIN = timedelta(seconds=30)  # leave room for the report itself

# (name, what it does, estimated seconds it needs to be worth starting) in the order they run.
STEPS: list[tuple[str, str, float]] = [
    ("vacuum-analyze", "VACUUM (ANALYZE) every table", 10),
    ("reindex", "REINDEX TABLE CONCURRENTLY every table (writes keep flowing)", 20),
    ("archive-logs", "compress and ship rotated logs, apply bucket retention", 10),
    ("verify-backup", "restore drill of the newest backup into a scratch database", 60),
    ("check-wallets", "wallet consistency check", 10),
    ("dependency-audit", "vulnerability audit of requirements.lock", 10),
]
STEP_NAMES = [name for name, _, _ in STEPS]


def window_end(now: datetime, until: str | None = None, budget_minutes: float | None = None) -> datetime:
    """The end of this run: now + budget, else the next `until` (HH:MM UTC, default 03:00)."""
    now = now.astimezone(UTC)
    if budget_minutes is not None:
        if budget_minutes <= 0:
            raise ValueError("--budget must be a positive number of minutes")
        return now + timedelta(minutes=budget_minutes)
    hour, minute = parse_until(until or DEFAULT_UNTIL)
    end = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return end if end > now else end + timedelta(days=1)


def parse_until(text: str) -> tuple[int, int]:
    """HH:MM (UTC) as (hour, minute); the operator's laptop checks it too, before any SSH."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text)
    if not match:
        raise ValueError(f"--until {text!r}: expected HH:MM (UTC), 00:00 to 23:59")
    return int(match[1]), int(match[2])


def fits(now: datetime, end: datetime, estimate_s: float) -> bool:
    return now + timedelta(seconds=estimate_s) + SAFETY_MARGIN <= end


def seconds_left(now: datetime, end: datetime) -> float:
    return max(0.0, (end - now - SAFETY_MARGIN).total_seconds())


@dataclass
class StepResult:
    step: str
    status: str  # one of STATUSES
    seconds: float
    detail: str

    def to_json(self) -> dict:
        return {"step": self.step, "status": self.status, "seconds": round(self.seconds, 2), "detail": self.detail}


# ok: did its job; failed: found a problem or broke; partial: the window closed part-way;
# skipped: did not do its job (left out, another host's, no time, or a tool it needs is missing).
STATUSES = ("ok", "failed", "partial", "skipped")


def exit_status(results: list[StepResult]) -> int:
    """1 when a step failed. Skipped and partial steps exit 0: the report names them and why, and a
    monthly cron mail for a tool a host never has would teach the team to ignore the mail."""
    return 1 if any(r.status == "failed" for r in results) else 0


def summary_line(results: list[StepResult], seconds: float) -> str:
    """The report's last line: what failed, and what did not (fully) do its job."""

    def names(status: str) -> str:
        return ", ".join(r.step for r in results if r.status == status) or "none"

    ok = sum(1 for r in results if r.status == "ok")
    return (
        f"maintenance: done in {seconds:.1f}s; {ok} of {len(results)} steps ok; failed: {names('failed')}; "
        f"partial: {names('partial')}; skipped: {names('skipped')}"
    )


def audit_status(pip_audit_ran: bool, vulnerabilities: int, advisory_findings: int) -> str:
    """The dependency audit's status: any finding fails it; without pip-audit's database the audit
    did not do its job (the team's advisory file alone is not an audit), so it is skipped, not ok."""
    if vulnerabilities or advisory_findings:
        return "failed"
    return "ok" if pip_audit_ran else "skipped"


# -- dependency audit ------------------------------------------------------------------------

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, str]:
    """`name==version` pins of a requirements lock file (canonical names)."""
    pins = {}
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[canonical(match[1])] = match[3]
    return pins


def version_key(version: str) -> tuple:
    """A comparable key of a release version: `2.9.0.post0` -> (2, 9, 0, 0, 1); pre-releases sort first."""
    match = re.match(r"^(\d+(?:\.\d+)*)(.*)$", version.strip())
    if not match:
        return ((0,), 0)
    release = tuple(int(p) for p in match[1].split("."))
    release = release + (0,) * (6 - len(release))
    suffix = match[2].lower()
    if re.match(r"^[.-]?(a|b|rc|alpha|beta|c|dev)", suffix):
        phase = -1
    elif re.match(r"^[.-]?post", suffix):
        phase = 1
    else:
        phase = 0
    return release, phase


def satisfies(version: str, specifier: str) -> bool:
    """`version` matches every clause of `specifier` (`>=1.0,<1.4.2`, `==2.0`, `<3`)."""
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        match = re.fullmatch(r"(<=|>=|==|!=|<|>)\s*(\S+)", clause)
        if not match:
            raise ValueError(f"bad version clause {clause!r}")
        op, other = match[1], version_key(match[2])
        mine = version_key(version)
        ok = {
            "<": mine < other,
            "<=": mine <= other,
            ">": mine > other,
            ">=": mine >= other,
            "==": mine == other,
            "!=": mine != other,
        }[op]
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    advisory: str
    severity: str
    fixed_in: str
    summary: str

    def describe(self) -> str:
        return (
            f"{self.package}=={self.version}: {self.advisory} ({self.severity}) {self.summary}; "
            f"fixed in {self.fixed_in or 'no release yet'}"
        )


def check_advisories(pins: dict[str, str], advisories: list[dict]) -> list[Finding]:
    """Pinned packages inside an advisory's affected ranges (`affected`: list of specifiers, any matches)."""
    findings = []
    for advisory in advisories:
        package = canonical(advisory["package"])
        version = pins.get(package)
        if version is None:
            continue
        if any(satisfies(version, spec) for spec in advisory["affected"]):
            findings.append(
                Finding(
                    package,
                    version,
                    advisory["id"],
                    advisory.get("severity", "unknown"),
                    advisory.get("fixed_in", ""),
                    advisory.get("summary", ""),
                )
            )
    return findings


def load_advisories(path: Path) -> tuple[str, list[dict]]:
    """(updated date, advisories) of the team's advisory file (see docs/dependencies.md)."""
    data = json.loads(path.read_text())
    return str(data.get("updated", "unknown")), list(data.get("advisories", []))


def pip_audit_command(executable: list[str], lock_file: str) -> list[str]:
    """pip-audit over the exact pins, without resolving or installing anything."""
    return [*executable, "-r", lock_file, "--no-deps", "--disable-pip", "--progress-spinner", "off", "--format", "json"]


def summarise_pip_audit(output: str) -> tuple[int, list[str]]:
    """(number of vulnerabilities, one line each) from pip-audit's JSON output."""
    data = json.loads(output)
    dependencies = data.get("dependencies", data) if isinstance(data, dict) else data
    lines = []
    for dependency in dependencies:
        for vuln in dependency.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            lines.append(f"{dependency['name']}=={dependency.get('version')}: {vuln['id']} (fixed in {fixed})")
    return len(lines), lines


# -- the record of the last run, read by the on-call handoff -----------------------------------
# cron.log is rotated daily and kept 7 days on the host, so last month's window is no longer in it
# by the time someone asks. Each run leaves one small JSON record instead, beside the deploy ledger.
RECORD_NAME = "maintenance-last.json"


def record_path(env_file: str | None) -> Path | None:
    """<deploy root>/state/maintenance-last.json for a deployed host (ENV_FILE is <root>/shared/.env);
    None for a run without a deploy root (a developer's machine), which records nothing."""
    if not env_file:
        return None
    return Path(env_file).resolve().parent.parent / "state" / RECORD_NAME


def run_record(
    started: datetime, finished: datetime, results: list[StepResult], shared_steps: bool, summary: str
) -> dict:
    """What the handoff shows of a run: when, how it ended, and each step's status."""
    return {
        "started_at": started.astimezone(UTC).isoformat(timespec="seconds"),
        "finished_at": finished.astimezone(UTC).isoformat(timespec="seconds"),
        "exit_status": exit_status(results) if results else 1,
        "shared_steps": shared_steps,
        "summary": summary.removeprefix("maintenance: "),
        "steps": [r.to_json() for r in results],
    }


def write_record(path: Path, record: dict) -> None:
    """Written aside and renamed: a reader never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, sort_keys=True) + "\n")
    partial.replace(path)
