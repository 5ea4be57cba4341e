"""What a host holds (current release, releases, live ports, ledger), read in one round trip, and its parser."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy.commands.layout import Layout, q
from deploy.commands.releases import RELEASE_ID_PATTERN

_SECTION = "::clicknback::"


@dataclass(frozen=True)
class HostState:
    """What the tooling needs to know about a host before it changes anything."""

    current: str | None
    releases: list[str]
    live_ports_text: str
    ledger_text: str
    env_file_exists: bool
    migration_heads: dict[str, str]
    metadata: dict[str, str]
    # Program files that still run `current` (provisioned before slot links): a switch would
    # start the old release on the standby ports, so deploys refuse until `invoke provision`.
    programs_without_slots: tuple[str, ...] = ()


def read_state_command(layout: Layout) -> str:
    """Print `current`, the releases (with each one's newest migration and RELEASE.json), the live
    ports, whether the secrets file exists, the program files that do not run slot links, and
    the ledger, as sections of one output."""
    models = "migrations/models"
    per_release = (
        f"for rel in $(ls -1 {q(layout.releases)} 2>/dev/null | grep -E {q(RELEASE_ID_PATTERN.pattern)}); do"
        f" dir={q(layout.releases)}/$rel;"
        f' echo "$rel $(ls -1 "$dir/{models}" 2>/dev/null | grep -E \'^[0-9]+_.*[.]py$\' | sort -n | tail -n 1)";'
        f' echo "{_SECTION}metadata $rel"; cat "$dir/RELEASE.json" 2>/dev/null; echo; echo "{_SECTION}releases"; done'
    )
    # Each `cat` is followed by an echo: a file without a final newline must not swallow a marker.
    return "; ".join(
        [
            f"echo '{_SECTION}current'",
            f"readlink {q(layout.current)} 2>/dev/null",
            f"echo '{_SECTION}releases'",
            per_release,
            f"echo '{_SECTION}live_ports'",
            f"cat {q(layout.live_ports)} 2>/dev/null",
            "echo",
            f"echo '{_SECTION}env_file'",
            f"{{ test -f {q(layout.env_file)} && echo yes; }}",
            f"echo '{_SECTION}programs_without_slots'",
            f"grep -L {q('^command=' + layout.slots + '/')} {q(layout.root)}/supervisor/conf.d/app-*.conf 2>/dev/null",
            f"echo '{_SECTION}ledger'",
            f"cat {q(layout.ledger)} 2>/dev/null",
            "echo",
        ]
    )


def parse_state(text: str) -> HostState:
    sections: dict[str, list[str]] = {}
    metadata: dict[str, list[str]] = {}
    target = sections.setdefault("", [])
    for line in text.splitlines():
        if line.startswith(_SECTION):
            name, _, arg = line[len(_SECTION) :].partition(" ")
            target = metadata.setdefault(arg, []) if name == "metadata" else sections.setdefault(name, [])
        else:
            target.append(line)
    current = "\n".join(sections.get("current", [])).strip()
    heads: dict[str, str] = {}
    for line in sections.get("releases", []):
        rel, _, head = line.strip().partition(" ")
        if rel:
            heads[rel] = head.strip()
    return HostState(
        current=Path(current).name if current else None,
        releases=sorted(heads),
        live_ports_text="\n".join(sections.get("live_ports", [])),
        ledger_text="\n".join(sections.get("ledger", [])),
        env_file_exists="yes" in sections.get("env_file", []),
        migration_heads=heads,
        metadata={rel: "\n".join(lines).strip() for rel, lines in metadata.items()},
        programs_without_slots=tuple(
            Path(line.strip()).stem for line in sections.get("programs_without_slots", []) if line.strip()
        ),
    )
