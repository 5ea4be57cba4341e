"""Compare rollback command-to-healthy of toolkit revisions, interleaved, on one sandbox.

    .venv/bin/python -m tests.e2e.deploy.rollback_ab REPS REV[,REV...]

Each REV is a git revision whose deploy toolkit (release, commands, tasks, templates) runs the
rollbacks; WORK is the working tree. All of them drive the same two sandbox hosts (sshd on
127.0.0.2 and 127.0.0.3, the e2e machinery), in turns, so a load that comes and goes on the
machine hits every variant alike. A single run under changing load says little: compare medians.
Each turn rolls both hosts back to vA, then host-2 alone to vC, under a bounded load generator
on nginx; it prints every task's output with wall-clock offsets (and CLICKNBACK_DEPLOY_TRACE),
each switch.log (how long the old instances took to drain) and the medians.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.gitrepo import PROJECT, copy_working_tree, git
from tests.support.load import LoadGenerator
from tests.support.sshd import seed_shared_venv, started_sandbox

TOOLKIT = [
    "deploy/release.py",
    "deploy/commands.py",
    "deploy/ssh.py",
    "deploy/tasks/release.py",
    "deploy/templates/supervisor-program.conf.tmpl",
    "deploy/templates/supervisord.conf.tmpl",
    "deploy/templates/nginx.conf.tmpl",
]
TASK_TIMEOUT_S = 300


def checkout(revision: str) -> Path:
    """A copy of the working tree whose toolkit files come from `revision` (WORK: as they are)."""
    path = Path(tempfile.mkdtemp(prefix="rollback-ab-"))
    copy_working_tree(path)
    if revision != "WORK":
        for name in TOOLKIT:
            shown = subprocess.run(["git", "-C", str(PROJECT), "show", f"{revision}:{name}"], capture_output=True)
            if shown.returncode == 0:  # a file the revision did not have yet stays as it is
                (path / name).write_bytes(shown.stdout)
    return path


def tagged_repo() -> Path:
    """The deployed code: vA is the working tree, vC a code-only change on top."""
    repo = checkout("WORK")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "vA")
    git(repo, "tag", "vA")
    (repo / "server" / "e2e_code_only_change.py").write_text('"""A code-only change (vC)."""\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "vC")
    git(repo, "tag", "vC")
    return repo


def main(reps: int, revisions: list[str]) -> None:
    tools = {revision: checkout(revision) for revision in revisions}
    repo = tagged_repo()
    try:
        compare(reps, revisions, tools, repo)
    finally:
        for path in [*tools.values(), repo]:
            shutil.rmtree(path, ignore_errors=True)


def compare(reps: int, revisions: list[str], tools: dict[str, Path], repo: Path) -> None:
    results: dict[tuple[str, str], list[float]] = {(r, shape): [] for r in revisions for shape in ("one", "two")}
    with started_sandbox() as box:
        solo = (
            f'\n[environments.solo]\n[[environments.solo.hosts]]\nname = "host-2"\naddress = "127.0.0.2"\n'
            f'bind_address = "127.0.0.2"\ndeploy_root = "{box.deploy_root("127.0.0.2")}"\n'
        )
        box.inventory_path.write_text(box.inventory_text() + solo)
        seed_shared_venv(box, (repo / "requirements.lock").read_bytes())
        env = {
            **os.environ,
            "CLICKNBACK_INVENTORY": str(box.inventory_path),
            "PYTHONUNBUFFERED": "1",
            "CLICKNBACK_DEPLOY_TRACE": "1",
        }

        def invoke(cwd: Path, *args: str) -> float:
            started = time.monotonic()
            process = subprocess.Popen(
                [sys.executable, "-m", "invoke", *args],
                cwd=cwd,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            lines = [f"{time.monotonic() - started:6.2f} {line.rstrip()}" for line in process.stdout]
            process.wait(timeout=TASK_TIMEOUT_S)
            seconds = time.monotonic() - started
            print(
                f"--- {cwd.name}: invoke {' '.join(args)}: exit {process.returncode}, {seconds:.2f}s,"
                f" load {os.getloadavg()[0]:.2f}\n" + "\n".join(lines),
                flush=True,
            )
            if process.returncode != 0:
                raise SystemExit(f"invoke {' '.join(args)} failed")
            return seconds

        invoke(repo, "provision", "--env-file", str(box.env_file))
        invoke(repo, "deploy", "--tag", "vA")
        invoke(repo, "deploy", "--tag", "vC")
        urls = [f"http://{address}:{box.nginx_port}/health/live" for address in box.addresses]
        for turn in range(reps):
            for revision in revisions if turn % 2 == 0 else revisions[::-1]:
                for shape, extra, target in (("two", [], "vA"), ("one", ["--env", "solo"], "vC")):
                    with LoadGenerator(urls if shape == "two" else urls[:1], request_id_prefix=f"ab{turn}") as load:
                        seconds = invoke(tools[revision], "rollback", "--to", target, *extra)
                    if load.failures:
                        raise SystemExit(f"failed requests during the rollback: {load.failures[:5]}")
                    results[(revision, shape)].append(round(seconds, 2))
        for address in box.addresses:
            log = Path(box.deploy_root(address)) / "shared" / "logs" / "switch.log"
            print(f"--- switch.log of {address}:\n{log.read_text() if log.exists() else '(none)'}")
    print("rollback command-to-healthy, seconds")
    for (revision, shape), seconds in results.items():
        print(f"  {revision:>12} {shape} host(s): median {statistics.median(seconds):.2f}  all {seconds}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(int(sys.argv[1]), sys.argv[2].split(","))
