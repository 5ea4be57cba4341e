"""Throwaway git repositories for e2e tests that deploy tags of this project."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
IDENTITY = {
    "GIT_AUTHOR_NAME": "e2e",
    "GIT_AUTHOR_EMAIL": "e2e@example.test",
    "GIT_COMMITTER_NAME": "e2e",
    "GIT_COMMITTER_EMAIL": "e2e@example.test",
}


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity; raises on failure, returns stripped stdout."""
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env={**os.environ, **IDENTITY}
    ).stdout.strip()


def copy_working_tree(destination: Path) -> None:
    """Copy this checkout's files (tracked and new, not ignored) as they are on disk now."""
    names = (
        subprocess.run(
            ["git", "-C", str(PROJECT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, names):
        source = PROJECT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def commit_and_tag(repo: Path, tag: str, message: str | None = None) -> Path:
    """Make `repo` (a folder of files) a git repository whose one commit holds them, tagged `tag`."""
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message or tag)
    git(repo, "tag", tag)
    return repo


def tagged_working_tree(destination: Path, tag: str = "v1") -> Path:
    """A git repository at `destination` with this checkout's files as one commit, tagged `tag`."""
    copy_working_tree(destination)
    return commit_and_tag(destination, tag)


def export_head(destination: Path) -> None:
    """This checkout's committed tree (HEAD, without anyone's unfinished edits) written to
    `destination`, every file included: `git archive` would drop what .gitattributes keeps out of
    a release, such as tasks.py, which an operator's checkout has."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        for args in (["read-tree", "HEAD"], ["checkout-index", "--all", f"--prefix={destination}/"]):
            subprocess.run(["git", "-C", str(PROJECT), *args], check=True, capture_output=True, env=env)
