"""The standby and failover builders (deploy/commands/standby.py) and the inventory's database table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy import ledger
from deploy.commands import standby as sc
from deploy.database import DatabaseSettings
from deploy.failover_drill import losses, report_line
from deploy.inventory import InventoryError, parse_inventory
from deploy.ops.pitr.replication import lag_report
from deploy.reports.stats import replication_lines, stats_text

INVENTORY = """
[environments.staging]
[[environments.staging.hosts]]
name = "db1"
address = "10.0.0.5"
"""


def test_the_database_table_defaults_to_debian_and_fills_host_placeholders() -> None:
    environment = parse_inventory(INVENTORY).environment("staging")
    assert environment.database == DatabaseSettings()
    table = '\n[environments.staging.database]\ndata_dir = "/d/{host}/data"\nstart = "start {address}"\nport = 5433\n'
    db = parse_inventory(INVENTORY + table).environment("staging").database.for_host("db1", "10.0.0.5")
    assert (db.data_dir, db.start, db.port, db.passfile) == (
        "/d/db1/data",
        "start 10.0.0.5",
        5433,
        "/d/db1/clicknback-replication.pgpass",
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("porte = 5432", "database.porte: unknown key"),
        ('port = "5432"', "database.port: expected a port number"),
        ('data_dir = "/"', "database.data_dir: expected an absolute path other than /"),
        ('firewall = "iptables"', "database.firewall: expected one of ufw, none"),
        ('replication_user = "Robert; DROP"', "database.replication_user: expected a lower-case role name"),
        ('stop = " "', "database.stop: expected a command"),
    ],
)
def test_a_bad_database_key_is_one_error_naming_it(line: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        parse_inventory(INVENTORY + f"\n[environments.staging.database]\n{line}\n")


def test_roles_and_names() -> None:
    assert sc.parse_role("primary 2\n") == sc.ClusterRole("primary", "2")
    assert sc.parse_role("primary 2").holds_data and sc.parse_role("down").holds_data
    assert not sc.parse_role("primary 0").holds_data and not sc.parse_role("fenced").holds_data
    assert sc.parse_role("standby streaming 10.0.0.5").streams_from("10.0.0.5")
    assert not sc.parse_role("standby stopping 10.0.0.5").streams_from("10.0.0.5")
    assert sc.slot_name("App-2.eu") == "standby_app_2_eu"
    assert sc.hba_address("10.0.0.7") == "10.0.0.7/32" and sc.hba_address("::1") == "::1/128"
    assert sc.hba_address("db2.internal") == "db2.internal"


def test_no_command_carries_the_password_and_the_upload_is_removed_even_on_failure() -> None:
    db = DatabaseSettings()
    role = sc.replication_role_command(db, ".pw")
    assert "PASSWORD " in role and '"$(cat .pw)"' in role and role.endswith("rm -f .pw; exit $status")
    assert sc.passfile_command(db, ".pw").endswith("rm -f .pw; exit $status")


def test_the_standby_never_inherits_a_synchronous_wait_or_a_fence() -> None:
    conf = sc.standby_conf(DatabaseSettings(), "10.0.0.5", "standby_db2", None)
    assert "synchronous_standby_names = ''" in conf and "default_transaction_read_only = 'off'" in conf
    assert "primary_slot_name = 'standby_db2'" in conf and "restore_command" not in conf
    assert (
        "application_name=standby_db2" in conf
        and "passfile=/var/lib/postgresql/15/clicknback-replication.pgpass" in conf
    )
    fence = sc.fence_command(DatabaseSettings(), "10.0.0.6")
    assert (
        "standby.signal" in fence and "default_transaction_read_only = '\"'\"'on" in fence and "host=10.0.0.6" in fence
    )


def repoint(env, url: str, socket_dir: str = "") -> tuple[str, str]:
    env.write_text(f"OAUTH_HASH_KEY=k\nDATABASE_URL={url}\nX=1\n")
    env.chmod(0o600)
    command = sc.repoint_command(sys.executable, str(env), "10.0.0.6", 5433, socket_dir)
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert env.stat().st_mode & 0o777 == 0o600
    lines = env.read_text().splitlines()
    assert lines[0] == "OAUTH_HASH_KEY=k" and lines[2] == "X=1"
    return result.stdout.strip(), lines[1]


def test_repoint_keeps_role_password_and_database_and_prints_no_password(tmp_path) -> None:
    env = tmp_path / ".env"
    shown, line = repoint(env, "postgres://app:s3cret@127.0.0.1:5432/clicknback?sslmode=prefer")
    assert (shown, line) == (
        "DATABASE_URL: 127.0.0.1 (port 5432) -> 10.0.0.6:5433",
        "DATABASE_URL=postgres://app:s3cret@10.0.0.6:5433/clicknback?sslmode=prefer",
    )
    # provision's socket form, on another host: TCP, the socket folder dropped
    shown, line = repoint(env, "postgres://clicknback@/clicknback?host=/var/run/postgresql")
    assert line == "DATABASE_URL=postgres://clicknback@10.0.0.6:5433/clicknback"
    assert shown == "DATABASE_URL: /var/run/postgresql (port 5432) -> 10.0.0.6:5433"
    # on the new primary's own host: its socket
    shown, line = repoint(env, "postgres://app:s3cret@127.0.0.1:5432/clicknback?sslmode=prefer", "/var/run/postgresql")
    assert line == "DATABASE_URL=postgres://app:s3cret@:5433/clicknback?sslmode=prefer&host=/var/run/postgresql"
    assert "s3cret" not in shown
    missing = subprocess.run(
        ["sh", "-c", sc.repoint_command(sys.executable, str(tmp_path / "none"), "h", 1)], capture_output=True, text=True
    )
    assert missing.returncode == 0 and "nothing to repoint" in missing.stdout


def test_the_standby_lets_the_other_app_hosts_in_with_a_password() -> None:
    assert sc.app_hba_line("10.0.0.5") == "host all all 10.0.0.5/32 scram-sha-256"
    assert "ufw allow from 10.0.0.5 to any port 5432 proto tcp" in (
        sc.firewall_command(DatabaseSettings(), "10.0.0.5") or ""
    )
    assert sc.firewall_command(DatabaseSettings(firewall="none"), "10.0.0.5") is None


def test_a_failover_line_is_not_a_release_going_live() -> None:
    def entry(kind: str, release: str, from_release: str | None = None) -> ledger.LedgerEntry:
        return ledger.LedgerEntry("me", "t", kind, "v", "c", release, ["h"], 1.0, "ok", from_release=from_release)

    entries = [entry("deploy", "r1"), entry("deploy", "r2", "r1"), entry("failover", "r2")]
    entries[-1] = ledger.LedgerEntry("me", "t", "failover", "v", "", "r2", ["h"], 1.0, "ok", detail="primary a -> b")
    assert ledger.parse_ledger(ledger.format_entry(entries[-1])) == [entries[-1]]
    assert ledger.live_history(entries) == ["r1", "r2"]
    assert ledger.last_entry_for(entries, "r2") == entries[1]
    assert ledger.entry_note(entries[-1]) == "database failover: primary a -> b"


def test_stats_shows_each_standbys_lag_in_bytes_and_seconds() -> None:
    rows = [
        {
            "application_name": "standby_db2",
            "state": "streaming",
            "sync_state": "sync",
            "lag_bytes": 8192,
            "lag_s": 0.25,
        }
    ]
    text = stats_text({"hosts": {}, "replication": lag_report(rows)}, "staging")
    assert "Replication: OK; standby standby_db2 streaming sync, lag 8192 B / 0.2 s" in text
    late = lag_report([{**rows[0], "lag_bytes": 64 * 1024 * 1024}])
    assert (
        "Replication: LATE;" in stats_text({"hosts": {}, "replication": late}, "staging")
        and "LATE" in replication_lines(late)[-1]
    )
    assert "no standby streams" in stats_text({"hosts": {}, "replication": lag_report([])}, "staging")
    assert "Replication: not read (sudo: a password is required)" in stats_text(
        {"hosts": {}, "replication": {"error": "sudo: a password is required"}}, "staging"
    )


def test_the_drill_counts_missing_acknowledged_purchases_and_their_span() -> None:
    acknowledged = [(1.0, "a"), (2.0, "b"), (3.5, "c"), (9.0, "d")]  # killed at 5.0; d came after the failover
    assert losses(acknowledged, {"a", "b", "c", "d"}, 5.0) == {"acknowledged": 4, "missing": 0, "rpo_s": 0.0}
    assert losses(acknowledged, {"a", "d"}, 5.0) == {"acknowledged": 4, "missing": 2, "rpo_s": 1.5}
    line = report_line(
        {
            "failover": "primary a (fenced) -> b",
            "synchronous": True,
            "acknowledged": 4,
            "missing": 0,
            "rpo_s": 0.0,
            "rto_s": 6.25,
            "requests": 10,
            "refused": {"503": 6},
        }
    )
    assert line.startswith("failover drill (synchronous): primary a (fenced) -> b; RTO 6.2s")
    assert "4 purchases acknowledged, 0 missing after failover (RPO 0.0s of writes)" in line and '{"503": 6}' in line


def test_the_handoff_lists_a_failover_among_the_incidents() -> None:
    from datetime import UTC, datetime

    from deploy.reports.handoff import handoff_markdown

    entry = ledger.LedgerEntry(
        "me",
        "2026-12-07T00:30:00+00:00",
        "failover",
        "vA",
        "",
        "r-vA",
        ["host-2"],
        9.5,
        "ok",
        detail="primary host-2 (fenced) -> host-3",
    )
    data = {
        "environment": "staging",
        "generated_at": datetime(2026, 12, 7, 1, 0, tzinfo=UTC),
        "operator": "me",
        "hosts": [],
        "ledger": [entry],
        "backups": {},
        "requests": None,
        "known_issues": "",
        "next_window": (datetime(2027, 1, 3, 1, tzinfo=UTC), datetime(2027, 1, 3, 3, tzinfo=UTC)),
        "escalation": "1. Developer",
    }
    text = handoff_markdown(data)
    assert "- 2026-12-07T00:30:00+00:00: database failover ok — primary host-2 (fenced) -> host-3" in text
