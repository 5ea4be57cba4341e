"""Releases on a host: tag and id checks, upload, extraction, the venv per lock file, pruning."""

from __future__ import annotations

import json
import re
from pathlib import Path

from deploy.commands.layout import Layout, q

RELEASE_ID_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9._-]+$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_tag(tag: str) -> str:
    """Tags become path components and shell words: only a safe alphabet is accepted."""
    if not TAG_PATTERN.match(tag):
        raise ValueError(f"tag {tag!r}: only letters, digits, '.', '_' and '-' are allowed")
    return tag


def release_id(deployed_at_compact: str, tag: str) -> str:
    """`20261127T010203Z-v1.2.3`: sorts by time, names the tag."""
    return f"{deployed_at_compact}-{check_tag(tag)}"


def release_metadata(tag: str, commit: str, deployed_at: str) -> str:
    return json.dumps({"version": tag, "commit": commit, "deployed_at": deployed_at}, sort_keys=True)


def upload_path(layout: Layout, rel_id: str) -> str:
    return f"{layout.releases}/.upload-{rel_id}.tar.gz"


def extract_release_command(layout: Layout, rel_id: str, metadata: str) -> str:
    """Unpack an uploaded `git archive` into releases/<id>/ and write RELEASE.json beside it."""
    archive, target = upload_path(layout, rel_id), layout.release(rel_id)
    return (
        f"rm -rf {q(target)} && mkdir -p {q(target)} && tar -xzf {q(archive)} -C {q(target)}"
        f" && rm -f {q(archive)} && printf '%s\\n' {q(metadata)} > {q(target + '/RELEASE.json')}"
    )


def build_venv_command(venv: str, requirements: str, python: str) -> str:
    """Reuse a venv whose `.complete` marker exists, else build it from a requirements file.

    The marker is written last, so a half-built venv (interrupted pip) is rebuilt next time. A build
    says `venv-building` first and keeps pip's line per package (no progress bars): the deploy
    shows the operator where it is (deploy/progress.py).
    """
    marker = f"{venv}/.complete"
    build = (
        f"echo venv-building && rm -rf {q(venv)} && {python} -m venv {q(venv)}"
        f" && {q(venv + '/bin/python')} -m pip install --progress-bar off --no-input --disable-pip-version-check"
        f" -r {q(requirements)} && touch {q(marker)} && echo venv-built"
    )
    return f"{{ test -f {q(marker)} && echo venv-reused || {{ {build}; }}; }}"


def ensure_venv_command(layout: Layout, rel_id: str, lock_hash: str, python: str) -> str:
    """venvs/<sha256 of requirements.lock>, built once per lock file, linked as the release's .venv."""
    venv, release = layout.venv(lock_hash), layout.release(rel_id)
    return (
        build_venv_command(venv, f"{release}/requirements.lock", python)
        + f" && ln -sfn {q(venv)} {q(release + '/.venv')}"
    )


def switch_current_command(layout: Layout, rel_id: str) -> str:
    """Point `current` at a release atomically: build the new symlink aside, then rename over."""
    tmp = f"{layout.root}/.current.tmp"
    return f"ln -sfn {q(layout.release(rel_id))} {q(tmp)} && mv -T {q(tmp)} {q(layout.current)}"


def point_release_slots_command(layout: Layout, rel_id: str, ports: tuple[int, ...]) -> str:
    """Point the slot links of `ports` at a release, each atomically (as `current`)."""
    steps = []
    for port in ports:
        slot = layout.slot(port)
        steps.append(f"ln -sfn {q(layout.release(rel_id))} {q(slot + '.tmp')} && mv -T {q(slot + '.tmp')} {q(slot)}")
    return " && ".join(steps)


def link_missing_slots_command(layout: Layout, ports: tuple[int, ...]) -> str:
    """Give every slot without a link the release `current` names, so hosts deployed before the
    programs ran from slots keep running what they ran. Existing links are left alone."""
    links = " ".join(q(layout.slot(port)) for port in ports)
    return (
        f"if rel=$(readlink {q(layout.current)}); then for slot in {links}; do"
        f' [ -L "$slot" ] || ln -sfn "$rel" "$slot" || exit 1; done; fi; true'
    )


def releases_to_prune(
    release_ids: list[str], keep: int, protected: set[str], bad: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """The releases to delete, oldest first.

    Kept: the newest `keep` releases that are not marked bad (rollback targets), the newest bad
    one (its code and logs explain the last failure), and `protected` (current, rollback target).
    Counting bad releases towards `keep` would let a run of failed deploys push out every good
    release to go back to.
    """
    newest_first = sorted(release_ids, reverse=True)
    kept = set(protected) | set([r for r in newest_first if r not in bad][:keep])
    kept |= set([r for r in newest_first if r in bad][:1])
    return sorted(r for r in release_ids if r not in kept)


def prune_command(layout: Layout, release_ids: list[str]) -> str:
    if not release_ids:
        return "true"
    return "rm -rf -- " + " ".join(q(layout.release(r)) for r in release_ids)


def venv_links_command(layout: Layout) -> str:
    """Prints the venvs on the host, then `--`, then the venv every release links to."""
    return (
        f"ls -1 {q(layout.venvs)} 2>/dev/null; echo --;"
        f' for link in {q(layout.releases)}/*/.venv; do readlink "$link" || true; done'
    )


def unused_venvs(listing: str) -> list[str]:
    """The venv folders (lock hashes) that no remaining release links to, from venv_links_command."""
    present, _, linked = listing.partition("--")
    in_use = {Path(line.strip()).name for line in linked.splitlines() if line.strip()}
    return sorted(name for name in present.split() if name not in in_use and re.fullmatch(r"[0-9a-f]{64}", name))


def prune_venvs_command(layout: Layout, lock_hashes: list[str]) -> str:
    if not lock_hashes:
        return "true"
    return "rm -rf -- " + " ".join(q(layout.venv(h)) for h in lock_hashes)
