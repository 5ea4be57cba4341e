"""The configuration templates of deploy/templates and their one renderer."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"


_PLACEHOLDER = re.compile(r"\{\{ *([a-z_]+) *\}\}")


def render(template_name: str, **values: object) -> str:
    """Fill `{{ name }}` placeholders; a missing or unused value is a bug, so both raise."""
    text = (TEMPLATES_DIR / template_name).read_text()
    used = set(_PLACEHOLDER.findall(text))
    missing = used - values.keys()
    unused = values.keys() - used
    if missing or unused:
        raise KeyError(f"{template_name}: missing {sorted(missing)}, unused {sorted(unused)}")
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)
