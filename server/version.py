"""What this process is running: the release metadata the deploy writes, or the dev checkout."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_VERSION = "0.1.0"


@dataclass(frozen=True)
class ReleaseInfo:
    version: str
    commit: str
    deployed_at: str | None


@lru_cache(maxsize=1)
def release_info() -> ReleaseInfo:
    release_file = PROJECT_ROOT / "RELEASE.json"
    if release_file.is_file():
        data = json.loads(release_file.read_text())
        return ReleaseInfo(str(data.get("version")), str(data.get("commit")), data.get("deployed_at"))
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return ReleaseInfo(PACKAGE_VERSION, commit, None)
