"""The operator's side of a release: the tag resolved in the local repository, its `git archive`
(what ships, see .gitattributes) and the hash of its lock file; the secrets file read from disk."""

from __future__ import annotations

import getpass
import hashlib
import socket
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from deploy import commands as cmd
from deploy.errors import DeployError


@dataclass(frozen=True)
class LocalRelease:
    tag: str
    commit: str
    archive: bytes
    lock_hash: str


def git_bytes(repo: Path, *args: str) -> bytes:
    """A git command's raw output (an archive, a file's bytes); DeployError with git's message on failure."""
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True)
    if result.returncode != 0:
        raise DeployError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def git(repo: Path, *args: str) -> str:
    return git_bytes(repo, *args).decode().strip()


def resolve_tag(repo: Path, tag: str) -> str:
    """The commit a tag names; refuses a tag that does not exist (never a branch or a sha)."""
    try:
        cmd.check_tag(tag)
    except ValueError as error:
        raise DeployError(str(error)) from None
    check_repository(repo)
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
    except DeployError:
        raise DeployError(missing_tag_message(tag, repo, ref_kind(repo, tag))) from None


def ref_kind(repo: Path, name: str) -> str | None:
    """What `name` is in the repository when it is not a tag: a branch, HEAD, a commit, or nothing."""
    if name == "HEAD" or name.endswith("_HEAD"):
        return "HEAD"
    for prefix, kind in ((f"refs/heads/{name}", "branch"), (f"refs/remotes/{name}", "remote branch")):
        if subprocess.run(["git", "-C", str(repo), "show-ref", "--verify", "--quiet", prefix]).returncode == 0:
            return kind
    found = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], capture_output=True
    )
    return "commit" if found.returncode == 0 else None


def missing_tag_message(tag: str, repo: Path, kind: str | None) -> str:
    """Why a --tag is refused and what to type instead. A branch or HEAD moves, so a deploy of it
    would not name fixed code: the advice is to tag the commit with a release-style name."""
    if kind is None:
        return (
            f"tag {tag!r} does not exist in {repo} (create it on the commit to release with "
            f"`git tag {tag} <commit>`, or fetch tags with `git fetch --tags`)"
        )
    what = {
        "HEAD": f"{tag!r} is HEAD (a moving pointer), not a tag",
        "branch": f"{tag!r} is a branch, not a tag",
        "remote branch": f"{tag!r} is a remote branch, not a tag",
        "commit": f"{tag!r} names a commit, not a tag",
    }[kind]
    return (
        f"{what}: deploys take a tag, so a release always names the same code. Tag the commit "
        f"with a release-style name, e.g. `git tag v1.2.3 {tag}`, then `invoke deploy --tag v1.2.3`"
    )


def check_repository(repo: Path) -> None:
    """Refuse a --repo that is missing or not a git work tree (before blaming the tag)."""
    if not repo.exists():
        raise DeployError(f"--repo {repo}: no such directory")
    if not repo.is_dir():
        raise DeployError(f"--repo {repo}: not a directory")
    try:
        git(repo, "rev-parse", "--git-dir")
    except DeployError:
        raise DeployError(f"--repo {repo}: not a git repository") from None


def read_env_file(path: Path) -> bytes:
    """The --env-file's bytes, or one line saying why it cannot be read (before any SSH)."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise DeployError(f"--env-file {path}: {(error.strerror or str(error)).lower()}") from None


def local_release(repo: Path, tag: str) -> LocalRelease:
    commit = resolve_tag(repo, tag)
    archive = git_bytes(repo, "archive", "--format=tar.gz", tag)
    try:
        lock_file = git_bytes(repo, "show", f"{tag}:requirements.lock")
    except DeployError:
        raise DeployError(f"tag {tag!r} has no requirements.lock at the repository root") from None
    return LocalRelease(tag, commit, archive, hashlib.sha256(lock_file).hexdigest())


def utc_now() -> datetime:
    return datetime.now(UTC)


def operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"
