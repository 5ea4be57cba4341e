"""The readiness gate's failure: which instances failed, and why in one line, from supervisor's
state and the last lines of their logs."""

from __future__ import annotations

import json
import re

from deploy import commands as cmd
from deploy.commands import Layout
from deploy.errors import DeployError
from deploy.inventory import Host

LOG_LINES_ON_FAILURE = 30
DETAIL_LIMIT = 600  # characters of a ledger entry's detail: it is shown in reports, keep it readable


CHECK_LINES_SHOWN = 6  # of a check's output that names no instance (the post-switch check through nginx)
LOGS_HINT = "the instances' full logs: `invoke logs --all-slots`"


class GateFailed(DeployError):
    """New instances did not become ready; carries the failing check and their last log lines.

    Its message is the first cause per instance (the gate's answer and the log's error line), not
    the log tails themselves: tracebacks of every instance on every host would bury the cause.
    """

    def __init__(
        self, host: Host, ports: list[int], check: str, log_tails: dict[int, str], states: dict[int, str] | None = None
    ):
        self.host, self.ports, self.check = host, ports, check
        self.log_tails, self.states = log_tails, states or {}
        names = ", ".join(cmd.program_name(port) for port in ports)
        if log_tails:
            lines = [line for port in ports for line in instance_cause(self, port)] + [LOGS_HINT]
        else:
            lines = [line.strip() for line in check.strip().splitlines() if line.strip()][:CHECK_LINES_SHOWN]
        text = "\n".join("  " + line for line in lines)
        super().__init__(_URL_PASSWORD.sub(r"\1***@", f"[{host.name}] {names} failed the health gate:\n{text}"))


def program_status_command(lay: Layout, port: int) -> str:
    """supervisorctl's status line of one instance (`app-8001  FATAL  Exited too quickly ...`)."""
    return f"{cmd.supervisorctl_command(lay, 'status', cmd.program_name(port))} 2>&1 || true"


# A Python exception line (`SyntaxError: invalid syntax`, `asyncpg.exceptions.X: ...`, `KeyError`).
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Fault)\b:?")
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]*@")


def _log_record_summary(record: dict) -> str:
    parts = [str(record[key]) for key in ("level", "event", "message", "error", "exception") if record.get(key)]
    return " ".join(parts)


def log_error(tail: str) -> str:
    """The error an instance's last output reports, or "" when it reports none: the last exception
    line of a traceback, else the last JSON log line at error level."""
    lines = [line.rstrip() for line in tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line.strip()
    errors = [r for r in _records(lines) if str(r.get("level", "")).lower() in ("error", "critical", "fatal")]
    return _log_record_summary(errors[-1]) if errors else ""


def _records(lines: list[str]) -> list[dict]:
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def log_cause(tail: str) -> str:
    """The line of an instance's last output that says why it failed: its error (log_error), else
    the last plain (not JSON, not indented) line, else the last JSON line; JSON lines as `level
    event message`, never raw."""
    error = log_error(tail)
    if error:
        return error
    lines = [line.rstrip() for line in tail.splitlines() if line.strip()]
    records = _records(lines)
    plain = [line.strip() for line in lines if not line[:1].isspace() and not line.startswith("{")]
    if plain:
        return plain[-1]
    return _log_record_summary(records[-1]) if records else ""


def supervisor_state(status_line: str) -> str:
    """`app-8001   FATAL   Exited too quickly (...)` -> `FATAL (Exited too quickly (...))`; a RUNNING
    one is just `RUNNING` (its pid and uptime say nothing about the failure)."""
    fields = status_line.strip().splitlines()[0].split(None, 2) if status_line.strip() else []
    if len(fields) < 2:
        return ""
    if fields[1] == "RUNNING" or len(fields) < 3 or not fields[2].strip():
        return fields[1]
    return f"{fields[1]} ({fields[2].strip()})"


def _answers(check: str) -> dict[str, tuple[str, str]]:
    """The readiness poller's last answer per URL: url -> (`HTTP 503 after 8s`, body's first line)."""
    answers: dict[str, tuple[str, str]] = {}
    lines = check.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"(\S+) answered (HTTP \d{3} after \d+s)", line.strip())
        if match:
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            answers[match.group(1)] = (match.group(2), "" if " answered HTTP " in following else following)
    return answers


def readiness_reason(body: str) -> str:
    """What /health/ready said was wrong: its error message (the failing check, `migrations: mismatch:
    ...`), else the body's start."""
    try:
        message = json.loads(body).get("error", {}).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else body[:150]


def instance_cause(failure: GateFailed, port: int) -> list[str]:
    """One or two lines on why one instance failed: its supervisor state and the gate's answer
    (status and failing check), then the error line of its log when it has one."""
    name, host = cmd.program_name(port), failure.host
    state = supervisor_state(failure.states.get(port, ""))
    answer, body = _answers(failure.check).get(host.ready_url_for(port), ("", ""))
    if answer.startswith("HTTP 000"):
        said = f"no answer from /health/ready {answer[len('HTTP 000 ') :]}"
    elif answer:
        reason = readiness_reason(body)
        said = f"/health/ready answered {answer}" + (f": {reason}" if reason else "")
    else:
        said = gate_summary(failure.check)
    lines = [f"{name}" + (f" {state}" if state else "") + (f": {said}" if said else "")]
    error = log_error(failure.log_tails.get(port, ""))
    if error:
        lines.append(f"  log: {error[:300]}")
    return lines


def gate_summary(check: str) -> str:
    """What the readiness poller saw, without the URLs: `HTTP 503 after 8s: <start of the body>`
    (once per distinct answer), else the check's first line."""
    answers: dict[str, str] = {}
    lines = check.splitlines()
    for index, line in enumerate(lines):
        match = re.search(r" answered (HTTP \d{3} after \d+s)", line)
        if match and match.group(1) not in answers:
            body = lines[index + 1].strip() if index + 1 < len(lines) and " answered " not in lines[index + 1] else ""
            answers[match.group(1)] = body[:150]
    if answers:
        return ", ".join(f"{answer}: {body}" if body else answer for answer, body in answers.items())
    return next((line.strip() for line in lines if line.strip()), "")


def gate_failure_detail(failure: GateFailed) -> str:
    """One line for the ledger: the gate's answer, then each failed instance's supervisor state and
    last meaningful log line (the root cause an operator looks for); instances that say the same
    are listed once. Bounded; passwords in URLs masked."""
    groups: dict[str, list[str]] = {}
    for port in failure.ports:
        state = supervisor_state(failure.states.get(port, ""))
        cause = log_cause(failure.log_tails.get(port, ""))[:300]
        said = (f" {state}" if state else "") + (f", last log: {cause}" if cause else "")
        groups.setdefault(said, []).append(cmd.program_name(port))
    parts = [", ".join(programs) + said for said, programs in groups.items()]
    gate = gate_summary(failure.check)
    line = f"{failure.host.name}: " + (f"gate {gate}; " if gate else "") + "; ".join(parts)
    line = _URL_PASSWORD.sub(r"\1***@", " ".join(line.split()))
    return line if len(line) <= DETAIL_LIMIT else line[: DETAIL_LIMIT - 1].rsplit(" ", 1)[0] + "…"


def failure_summary(failures: list[GateFailed]) -> str:
    return " | ".join(gate_failure_detail(f) for f in failures)
