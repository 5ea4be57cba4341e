"""The operator's command line: `invoke TASK --help`, flags, bad input and unreachable hosts.

Every test runs the real `invoke` on this repository's tasks.py in a subprocess, as an operator
would. The "hosts" are loopback ports with nothing listening (a refused connection), so no test
needs an sshd; a test that got past input checking into SSH would show it in its output.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
import sys
import threading
from functools import cache
from pathlib import Path

import paramiko
import pytest

from deploy.inventory import parse_inventory
from deploy.ssh import ConnectionFailed, connect, connection_failure_cause
from tests.support import ports
from tests.support.gitrepo import commit_and_tag

ROOT = Path(__file__).resolve().parents[3]


def invoke(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "CLICKNBACK_INVENTORY"}
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    text = output(result)
    assert result.returncode != 0, text
    assert "Traceback" not in text, text
    error_lines = [line for line in text.splitlines() if line.startswith("ERROR")]
    assert error_lines, text
    for fragment in expected:
        assert fragment in text, (fragment, text)


# The suite's own sshd hosts listen on 127.0.0.2 and 127.0.0.3 for the whole session, and a port
# free on 127.0.0.1 may be one of theirs there: these tests put hosts on all three.
HOST_ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


@pytest.fixture(scope="module")
def closed_port() -> int:
    return ports.closed_port(*HOST_ADDRESSES)


def inventory_file(
    tmp_path: Path,
    port: int,
    *,
    env: str = "staging",
    default: str | None = None,
    hosts: tuple[str, ...] = ("127.0.0.1",),
    extra: str = "",
) -> str:
    text = f'default_environment = "{default or env}"\n[environments.{env}]\n{extra}'
    for index, address in enumerate(hosts, 1):
        text += (
            f'[[environments.{env}.hosts]]\nname = "h{index}"\naddress = "{address}"\nssh_port = {port}\n'
            f'known_hosts = "{tmp_path}/known_hosts"\n'
        )
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    return str(path)


def task_names() -> list[str]:
    listing = invoke("--list").stdout
    return re.findall(r"^  ([a-z][a-z-]+)\s", listing, re.MULTILINE)


TASKS = task_names()


def test_the_listing_found_the_tasks():
    assert {"deploy", "rollback", "restore", "backup", "sandbox", "stats", "drill", "bench"} <= set(TASKS)


@cache
def task_help(task: str, flag: str = "--help") -> str:
    result = invoke(task, flag)
    assert result.returncode == 0, output(result)
    return result.stdout


@pytest.mark.parametrize("task", TASKS)
def test_help_after_the_task_name_shows_the_tasks_help(task):
    text = task_help(task)
    assert "Usage:" in text and "ERROR" not in text, text


@pytest.mark.parametrize("task", ["deploy", "restore", "sandbox", "backup", "stats", "rollback"])
def test_dash_h_after_the_task_name_is_help_too(task):
    assert "Usage:" in task_help(task, "-h")


@pytest.mark.parametrize("task", TASKS)
def test_short_flags_are_the_same_everywhere(task):
    text = task_help(task)
    assert not re.search(r"^\s+-h[ ,]", text, re.MULTILINE), f"-h is help, not an option of {task}"
    if "--dry-run" in text:
        assert re.search(r"^\s+-d, --dry-run", text, re.MULTILINE), text
    if "--env=" in text:
        assert "-e STRING, --env=STRING" in text
    if "--inventory=" in text:
        assert "-i STRING, --inventory=STRING" in text


@pytest.mark.parametrize("task", TASKS)
def test_no_flag_has_an_empty_name(task):
    # `drill` once showed `--=STRING, --db-start=STRING`: invoke took the dash as a short flag.
    flags = re.findall(r"^  (-\S*?)(?:[ =,]|$)", task_help(task), re.MULTILINE)  # option lines, not wrapped help
    assert flags and all(re.fullmatch(r"-[A-Za-z0-9]|--[a-z0-9][a-z0-9-]*", flag) for flag in flags), flags


def test_drill_help_gives_every_db_flag_a_real_name():
    text = task_help("drill")
    assert "--db-start=STRING" in text and "--db-stop=STRING" in text and "--=" not in text


def test_drill_keeps_its_short_flags_and_has_no_sandbox_option():
    text = task_help("drill")
    for flags in ("-b STRING, --db-stop=STRING", "-t STRING, --db-start=STRING", "-m INT, --timeout=INT"):
        assert flags in text, text
    assert "sandbox-dir" not in text and "drill_runs_on" in text


@pytest.mark.parametrize(
    "task,option",
    [
        ("stats", "--window-hours=STRING"),
        ("maintenance", "--budget=STRING"),
        ("bench", "--duration=STRING"),
        ("bench", "--warmup=STRING"),
        ("logs", "--lines=INT"),
        ("drill", "--timeout=INT"),
        ("deploy", "--tag=STRING"),
        ("restore", "--backup=STRING"),
        ("backup", "--host=STRING"),
    ],
)
def test_options_that_take_a_value_show_it(task, option):
    assert option in task_help(task)


def test_a_repeatable_option_says_how_to_repeat_it():
    assert "--skip=STEP" in task_help("maintenance")


@pytest.mark.parametrize(
    "args,flag", [(("deploy",), "--tag"), (("restore",), "--backup"), (("deploy", "--dry-run"), "--tag")]
)
def test_a_missing_required_option_is_named(args, flag):
    assert_one_line_error(invoke(*args), f"needs {flag}")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (("logs", "--lines", "abc"), "--lines takes a whole number above 0, got 'abc'"),
        (("logs", "--lines", "0"), "--lines takes a whole number above 0"),
        (("logs", "--lines", "-5"), "--lines takes a whole number above 0"),
        (("drill", "--timeout", "abc"), "--timeout takes a whole number above 0"),
        (("stats", "--window-hours", "abc"), "--window-hours takes a number above 0, got 'abc'"),
        (("stats", "--window-hours", "-1"), "--window-hours takes a number above 0"),
        (("stats", "--window-hours", "nan"), "--window-hours takes a number above 0"),
        (("maintenance", "--budget", "abc"), "--budget takes a number above 0"),
        (("maintenance", "--budget", "0"), "--budget takes a number above 0"),
        (("bench", "--duration", "abc"), "--duration takes a number above 0"),
        (("bench", "--warmup", "-1"), "--warmup takes a number 0 or more"),
    ],
)
def test_bad_numbers_are_one_line_before_any_ssh(tmp_path, closed_port, args, fragment):
    result = invoke(*args, "-i", inventory_file(tmp_path, closed_port))
    assert_one_line_error(result, fragment)
    assert "SSH" not in output(result)


@pytest.mark.parametrize(
    "args,fragment",
    [
        (("provision", "--env-file", "/nonexistent/app.env"), "--env-file /nonexistent/app.env: no such file"),
        (("provision", "--system", "--env-file", "/nonexistent/app.env"), "--env-file /nonexistent/app.env"),
        (("deploy", "--tag", "v1", "--repo", "/nonexistent"), "--repo /nonexistent: no such directory"),
        (("rollback", "--to", "bad tag"), "--to: tag 'bad tag': only letters, digits"),
        (("rollback", "--to", "../x"), "--to: tag '../x'"),
        (("handoff", "--known-issues", "docs/no-such-file.md"), "--known-issues"),
        (("stats", "--end", "yesterday"), "--end 'yesterday': expected an ISO-8601 time"),
        (("maintenance", "--until", "25:00"), "--until '25:00': expected HH:MM (UTC)"),
        (("maintenance", "--until", "02:30", "--budget", "10"), "--until and --budget are alternatives"),
        (("maintenance", "--skip", "vacuum"), "--skip 'vacuum': not a step"),
        (("handoff", "--output", "/nonexistent/handoff.md"), "--output /nonexistent/handoff.md: the folder"),
        (("stats", "--html", "/nonexistent/report.html"), "--html /nonexistent/report.html: the folder"),
        (("lock", "--acquire"), 'a freeze needs a reason: --message "why deploys must wait"'),
        (("lock", "--acquire", "--message", " "), "a freeze needs a reason"),
        (("lock", "--acquire", "--release", "-m", "x"), "lock takes --acquire or --release, not both"),
        (("lock", "--message", "x"), "--message goes with --acquire"),
    ],
)
def test_bad_input_is_refused_before_any_ssh(tmp_path, closed_port, args, fragment):
    result = invoke(*args, "-i", inventory_file(tmp_path, closed_port))
    assert_one_line_error(result, fragment)
    assert "SSH to" not in output(result), output(result)


def test_a_repo_that_is_not_a_git_repository_is_said_so(tmp_path, closed_port):
    plain = tmp_path / "plain"
    plain.mkdir()
    result = invoke("deploy", "--tag", "v1", "--repo", str(plain), "-i", inventory_file(tmp_path, closed_port))
    assert_one_line_error(result, f"--repo {plain}: not a git repository")


def test_a_typo_in_default_environment_never_picks_another_one(tmp_path, closed_port):
    path = inventory_file(tmp_path, closed_port, env="prod", default="stagin")
    Path(path).write_text(
        Path(path).read_text() + "[environments.staging]\n[[environments.staging.hosts]]\n"
        f'address = "127.0.0.1"\nssh_port = {closed_port}\n'
    )
    for task in ("releases", "drill"):
        result = invoke(task, "-i", path)
        assert_one_line_error(result, "default_environment: no environment named 'stagin' (known: prod, staging)")
        assert "SSH to" not in output(result) and "drill:" not in output(result)


@pytest.mark.parametrize("env,extra", [("production", "allow_drill = true\n"), ("prod-eu", ""), ("live", "")])
def test_the_drill_refuses_production_like_environments_before_any_ssh(tmp_path, closed_port, env, extra):
    result = invoke("drill", "-i", inventory_file(tmp_path, closed_port, env=env, extra=extra))
    assert_one_line_error(result, "never runs on production")
    assert "SSH to" not in output(result) and "drill:" not in output(result)


def test_the_drill_refuses_an_environment_that_does_not_allow_it(tmp_path, closed_port):
    # One host is not a loopback address: the environment must opt in with allow_drill.
    result = invoke("drill", "-i", inventory_file(tmp_path, closed_port, hosts=("127.0.0.1", "localhost.invalid")))
    assert_one_line_error(result, "does not allow it", "allow_drill = true")
    assert "SSH to" not in output(result)


@pytest.mark.parametrize("task", ["health", "releases", "stats", "handoff"])
def test_reports_mark_each_unreachable_host_in_one_line(tmp_path, closed_port, task):
    result = invoke(task, "-i", inventory_file(tmp_path, closed_port, hosts=("127.0.0.1", "127.0.0.2")))
    text = output(result)
    assert result.returncode == 1 and "Traceback" not in text, text
    for host, address in (("h1", "127.0.0.1"), ("h2", "127.0.0.2")):
        assert f"{host}" in text and f"SSH to {address} port {closed_port}" in text, text
    assert "connection refused" in text


@pytest.fixture(scope="module")
def tagged_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    (repo / "requirements.lock").write_text("")
    return commit_and_tag(repo, "v1", "x")


@pytest.mark.parametrize(
    "name,expected",
    [
        ("HEAD", "'HEAD' is HEAD (a moving pointer), not a tag"),
        ("release-branch", "'release-branch' is a branch, not a tag"),
    ],
)
def test_a_branch_or_head_as_tag_gets_advice_to_tag_a_commit(tmp_path, closed_port, tagged_repo, name, expected):
    subprocess.run(["git", "-C", str(tagged_repo), "branch", "-f", "release-branch"], check=True)
    result = invoke("deploy", "--tag", name, "--repo", str(tagged_repo), "-i", inventory_file(tmp_path, closed_port))
    assert_one_line_error(result, expected, f"`git tag v1.2.3 {name}`")
    assert f"git tag {name}`" not in output(result) and "connection refused" not in output(result)


def test_a_commit_sha_or_a_missing_name_as_tag_is_said_so(tmp_path, closed_port, tagged_repo):
    sha = subprocess.run(
        ["git", "-C", str(tagged_repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    inventory = inventory_file(tmp_path, closed_port)
    result = invoke("deploy", "--tag", sha[:12], "--repo", str(tagged_repo), "-i", inventory)
    assert_one_line_error(result, f"'{sha[:12]}' names a commit, not a tag", f"`git tag v1.2.3 {sha[:12]}`")
    result = invoke("deploy", "--tag", "v9.9.9", "--repo", str(tagged_repo), "-i", inventory)
    assert_one_line_error(result, "tag 'v9.9.9' does not exist", "git fetch --tags")


@pytest.mark.parametrize(
    "args",
    [
        ("logs",),
        ("logs", "--follow"),
        ("deploy", "--tag", "v1"),
        ("rollback",),
        ("lock",),
        ("lock", "--acquire", "--message", "db upgrade"),
        ("backup",),
        ("restore", "--backup", "b", "--target", "t"),
        ("maintenance",),
        ("archive-logs",),
        ("provision", "--dry-run"),
    ],
)
def test_an_unreachable_host_is_one_line_and_a_failure(tmp_path, closed_port, tagged_repo, args):
    repo = ("--repo", str(tagged_repo)) if args[0] == "deploy" else ()
    result = invoke(*args, *repo, "-i", inventory_file(tmp_path, closed_port))
    text = output(result)
    assert_one_line_error(result, f"[h1] SSH to 127.0.0.1 port {closed_port} as clicknback failed: connection refused")
    assert len([line for line in text.splitlines() if "connection refused" in line]) == 1, text


@pytest.mark.parametrize("args", [("provision", "--system"), ("provision", "--pitr")])
def test_the_root_setup_opens_the_admin_login_before_anything(tmp_path, closed_port, args):
    result = invoke(*args, "--admin-user", "admin", "-i", inventory_file(tmp_path, closed_port))
    assert_one_line_error(result, f"[h1] SSH to 127.0.0.1 port {closed_port} as admin failed: connection refused")
    assert "as clicknback" not in output(result), output(result)


def test_handoff_defaults_come_from_the_repository_not_the_current_folder(tmp_path, closed_port):
    out = tmp_path / "handoff.md"
    result = invoke("handoff", "--output", str(out), "-i", inventory_file(tmp_path, closed_port), cwd=ROOT / "docs")
    assert result.returncode == 1 and "Traceback" not in output(result), output(result)  # the host is down
    text = out.read_text()
    known = (ROOT / "docs" / "known-issues.md").read_text()
    first_issue = re.search(r"^## (.+)$", known, re.MULTILINE)[1]
    assert first_issue in text, "the known issues are in the handoff even when run from docs/"
    escalation = text.split("## Escalation path")[1]
    assert "See docs/on-call.md." not in escalation and len(escalation.strip()) > 40


def test_connection_failure_causes_are_short_and_name_the_reason():
    refused = paramiko.ssh_exception.NoValidConnectionsError({("127.0.0.1", 9): OSError(errno.ECONNREFUSED, "x")})
    assert connection_failure_cause(refused).startswith("connection refused")
    unreachable = paramiko.ssh_exception.NoValidConnectionsError({("127.0.0.1", 9): OSError(errno.EHOSTUNREACH, "x")})
    assert connection_failure_cause(unreachable) == os.strerror(errno.EHOSTUNREACH).lower()
    assert connection_failure_cause(TimeoutError("timed out"), 10).startswith("timed out after 10s")
    assert (
        connection_failure_cause(socket.gaierror(-2, "Name or service not known"))
        == "cannot resolve the address (Name or service not known)"
    )
    assert connection_failure_cause(paramiko.AuthenticationException("Authentication failed.")).startswith(
        "authentication failed"
    )
    assert connection_failure_cause(EOFError()) == "the connection was closed by the host"
    for message in ("No existing session", "Error reading SSH protocol banner"):
        cause = connection_failure_cause(paramiko.SSHException(message), 10, 10.01)
        assert cause.startswith("timed out after 10s waiting for the SSH greeting"), cause
        closed = connection_failure_cause(paramiko.SSHException(message), 10, 0.05)  # long before the timeout
        assert closed.startswith("the host closed the connection before its SSH greeting (sshd refusing"), closed
    reset = paramiko.SSHException("Error reading SSH protocol banner[Errno 104] Connection reset by peer")
    assert connection_failure_cause(reset, 10, 10.0).startswith(
        "the host closed the connection before its SSH greeting ([Errno 104] Connection reset by peer)"
    )


# Connects as a task would, then waits (bounded) for paramiko's transport thread to end: outside
# pytest (whose log capture would swallow it), a thread's failure would show on stderr.
SILENT_PORT_CLIENT = """
import sys, threading, time
import paramiko
from deploy.inventory import parse_inventory
from deploy.ssh import ConnectionFailed, connect
text = '[environments.s]\\n[[environments.s.hosts]]\\nname = "h1"\\naddress = "127.0.0.1"\\nssh_port = %s\\n'
host = parse_inventory(text % sys.argv[1]).environment("s").hosts[0]
started = time.monotonic()
try:
    connect(host, connect_timeout=1)
except ConnectionFailed as error:
    print(error)
print(f"{time.monotonic() - started:.1f}")
transports = lambda: [t for t in threading.enumerate() if isinstance(t, paramiko.Transport)]
deadline = time.monotonic() + 5
while transports() and time.monotonic() < deadline:
    time.sleep(0.05)
print("transports", len(transports()))
"""


def test_a_port_that_accepts_and_never_greets_is_a_timeout_naming_the_greeting():
    # A listening socket nobody accepts on: the kernel completes the TCP handshake, nothing is sent.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-c", SILENT_PORT_CLIENT, str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    message, seconds, threads = result.stdout.splitlines()
    assert message == (
        f"[h1] SSH to 127.0.0.1 port {port} as clicknback failed: timed out after 1s waiting for the SSH "
        f"greeting (the port accepts connections but nothing answers as an SSH server: is it sshd's port? "
        f"is the host overloaded?)"
    ), result.stdout
    assert float(seconds) < 5 and threads == "transports 0", result.stdout
    assert result.stderr == "", result.stderr  # no traceback from paramiko's thread


def test_a_port_that_closes_before_greeting_is_not_called_a_timeout():
    with socket.socket() as closing:
        closing.bind(("127.0.0.1", 0))
        closing.listen(4)
        closing.settimeout(10)
        port = closing.getsockname()[1]

        def close_one() -> None:
            accepted, _ = closing.accept()
            accepted.close()

        closer = threading.Thread(target=close_one, daemon=True)
        closer.start()
        host = (
            parse_inventory(
                f'[environments.s]\n[[environments.s.hosts]]\nname = "h1"\naddress = "127.0.0.1"\nssh_port = {port}\n'
            )
            .environment("s")
            .hosts[0]
        )
        with pytest.raises(ConnectionFailed) as failed:
            connect(host, connect_timeout=5)
        closer.join(timeout=10)
    assert "the host closed the connection before its SSH greeting" in str(failed.value), str(failed.value)


def test_sandbox_inventory_helper_accepts_only_loopback_for_the_implicit_drill():
    text = (
        '[environments.sandbox]\n[[environments.sandbox.hosts]]\naddress = "127.0.0.2"\n'
        '[[environments.sandbox.hosts]]\naddress = "::1"\n'
    )
    assert parse_inventory(text).environment("sandbox").drill_refusal() is None


def test_operations_module_entry_point_follows_the_same_conventions():
    result = subprocess.run(
        [sys.executable, "-m", "deploy.tasks.operations", "drill", "--timeout", "abc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_error(result, "--timeout takes a whole number above 0")
