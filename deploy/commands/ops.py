"""The ops CLI on the host (deploy/ops/cli.py): migrations and the commands run through it."""

from __future__ import annotations

from pathlib import Path

from deploy.commands.layout import Layout, q

OPS_CLI = "deploy.ops.cli"


def ops_command(layout: Layout, rel_id: str, *args: str) -> str:
    """Run the ops CLI of one release with the host's secrets file."""
    release = layout.release(rel_id)
    return f"cd {q(release)} && ENV_FILE={q(layout.env_file)} ./.venv/bin/python -m {OPS_CLI} " + " ".join(
        q(a) for a in args
    )


def migrate_command(layout: Layout, rel_id: str) -> str:
    return ops_command(layout, rel_id, "migrate")


def migrate_to_command(layout: Layout, rel_id: str, number: int) -> str:
    return ops_command(layout, rel_id, "migrate", "--to", str(int(number)))


def migrate_status_command(layout: Layout, rel_id: str) -> str:
    return ops_command(layout, rel_id, "migrate", "--status")


def migration_number(file_name: str | None) -> int | None:
    """`2_20261127_add_x.py` -> 2; None stays None (an empty database)."""
    if not file_name:
        return None
    head = Path(file_name).name.split("_", 1)[0]
    return int(head) if head.isdigit() else None


def database_ahead_of(status: dict) -> bool:
    """True when the database holds a migration newer than this release's code head."""
    db_number = migration_number(status.get("db_head"))
    code_number = status.get("code_head_number")
    if code_number is None:
        code_number = migration_number(status.get("code_head"))
    return db_number is not None and code_number is not None and db_number > code_number
