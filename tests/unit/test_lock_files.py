"""Production venvs are built from requirements.lock alone: it must carry every pinned dependency."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line.strip())
        if match:
            pins[re.sub(r"\[.*\]", "", match.group(1)).lower().replace("_", "-")] = match.group(2)
    return pins


def _declared(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        name, _, version = line.partition("==")
        pins[re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_every_runtime_pin_is_in_requirements_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _pins(ROOT / "requirements.lock")
    for name, version in _declared(project["dependencies"]).items():
        assert lock.get(name) == version, f"{name}=={version} missing from requirements.lock"


def test_dev_lock_holds_the_runtime_lock_and_the_test_tools():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, dev = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-dev.lock")
    for name, version in runtime.items():
        assert dev.get(name) == version, f"{name}=={version}: requirements-dev.lock disagrees"
    for name, version in _declared(project["optional-dependencies"]["test"]).items():
        assert dev.get(name) == version, f"{name}=={version} missing from requirements-dev.lock"
