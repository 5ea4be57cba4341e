"""Every `invoke ...` line in the operations runbooks names a real task and real options.

The runbooks promise their commands run as written; this keeps them honest when tasks change.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import tasks

DOCS = Path(__file__).resolve().parents[3] / "docs"
RUNBOOKS = [
    "operations.md",
    "observability.md",
    "logs.md",
    "maintenance.md",
    "security-updates.md",
    "dependencies.md",
    "on-call.md",
    "known-issues.md",
    "incidents.md",
    "disaster-recovery.md",
]
LINKED = RUNBOOKS + ["rollback.md", "restore.md", "deploy.md", "health-checks.md", "common-issues.md", "benchmarks.md"]


def invoke_commands(text: str) -> list[str]:
    """`invoke ...` commands in code blocks and inline code, split at pipes and `&&`."""
    snippets = re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.DOTALL) + re.findall(r"`([^`\n]+)`", text)
    commands = []
    for snippet in snippets:
        snippet = snippet.replace("\\\n", " ")
        for line in snippet.splitlines():
            line = line.split(" #", 1)[0]
            for part in re.split(r"\|\||&&|\||;", line):
                part = part.strip()
                if part.startswith("invoke "):
                    commands.append(part)
    return commands


def check(command: str) -> None:
    words = shlex.split(command.replace("<", "'<").replace(">", ">'"))
    if words[1] in ("--list", "-l", "--help"):  # invoke's own options
        return
    name = words[1]
    assert name in tasks.ns.task_names, f"{command}: no task {name!r}"
    task = tasks.ns[name]
    arguments = {arg.name.replace("_", "-"): arg for arg in task.get_arguments()}
    for word in words[2:]:
        if word.startswith("--"):
            option = word[2:].split("=", 1)[0]
            assert option in arguments, f"{command}: task {name} has no option --{option}"
    positional = [w for w in words[2:] if not w.startswith("-")]
    if name == "sandbox":
        assert positional and positional[0] in ("up", "down"), command


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_every_invoke_command_in_the_runbook_exists(runbook):
    commands = invoke_commands((DOCS / runbook).read_text())
    for command in commands:
        check(command)


def test_the_runbooks_have_commands_and_links_resolve():
    total = 0
    for runbook in RUNBOOKS:
        text = (DOCS / runbook).read_text()
        total += len(invoke_commands(text))
        for target in re.findall(r"\]\(([a-z-]+\.md)(?:#[a-z0-9-]+)?\)", text):
            assert target in LINKED, f"{runbook} links to {target}, which is not a runbook"
            assert (DOCS / target).exists() or target in ("restore.md",), f"{runbook}: {target} is missing"
    assert total > 40


def test_the_checker_catches_a_wrong_option():
    with pytest.raises(AssertionError, match="no option --windw-hours"):
        check("invoke stats --windw-hours 1")
    with pytest.raises(AssertionError, match="no task"):
        check("invoke stat")


@pytest.mark.parametrize("name", LINKED)
def test_host_commands_name_the_env_file_by_an_absolute_path(name):
    """Host commands run from `current`, a symlink into releases/: ENV_FILE=../shared/.env
    resolves inside releases/ and the ops CLI stops with 'file does not exist'."""
    text = (DOCS / name).read_text()
    assert re.findall(r"ENV_FILE=\.{1,2}/\S*", text) == []
