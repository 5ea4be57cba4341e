"""What a release ships: `git archive` of a tag, as deploy builds it, holds the runtime and nothing else."""

from __future__ import annotations

import io
import tarfile

from deploy.local_git import local_release
from tests.support.gitrepo import tagged_working_tree

RUNTIME = {"server", "deploy", "migrations", "pyproject.toml", "requirements.lock"}
# The compressed archive each deploy uploads to every host; the runtime alone is a fraction of it.
MAX_ARCHIVE_BYTES = 400 * 1024


def test_a_release_archive_holds_the_runtime_only(tmp_path):
    release = local_release(tagged_working_tree(tmp_path / "repo", "v1"), "v1")
    with tarfile.open(fileobj=io.BytesIO(release.archive), mode="r:gz") as archive:
        names = [member.name for member in archive.getmembers() if member.isfile()]
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == RUNTIME, sorted(top_level)
    assert not [name for name in names if name.endswith((".whl", ".md"))]
    assert "deploy/ops/cli.py" in names and "server/__main__.py" in names and "requirements.lock" in names
    assert len(release.archive) < MAX_ARCHIVE_BYTES, len(release.archive)
