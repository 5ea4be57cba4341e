"""The operations tasks end to end on the sandbox's two sshd hosts, PostgreSQL and S3 endpoint.

Run in file order on one deployed sandbox: archival (with a failed upload first), stats over known
log contents, the HTML report in headless Chromium, the maintenance window, the handoff, then the
failover drill (last: it crashes everything and must leave it healthy).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from deploy import commands as cmd
from deploy.session import current_release, layout
from devtools.local_sshd import chown_tree
from devtools.sandbox import DATABASE
from server.seed import load_demo_seed
from tests.e2e.operations.conftest import logs_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NOW = datetime.now(UTC)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d_%H-%M-%S_%f")


def keys(bucket, prefix: str) -> list[str]:
    return sorted(
        o["Key"] for o in bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=prefix).get("Contents", [])
    )


def test_archive_logs_keeps_files_when_the_upload_fails_then_archives_with_retention(
    ops_task, deployed, hosts, remotes, bucket
):
    host, remote = hosts[0], remotes[0]
    folder = logs_dir(deployed, host)
    old_name = f"app-8001.{stamp(NOW - timedelta(days=10))}.log"
    recent_name = f"app-8001.{stamp(NOW - timedelta(days=1))}.log"
    old_content = "".join(
        json.dumps({"time": (NOW - timedelta(days=10)).isoformat(), "event": "http.request", "n": i}) + "\n"
        for i in range(200)
    )
    (folder / old_name).write_text(old_content)
    live = folder / "app-7777.log"  # a live file (not rotated): never touched
    live.write_text('{"live": 1}\n')
    (folder / recent_name).write_text(
        json.dumps({"time": (NOW - timedelta(days=1)).isoformat(), "event": "app.start"}) + "\n"
    )
    chown_tree(folder, deployed.sshd.user)
    prefix = f"logs/{socket.gethostname()}/"  # the sandbox hosts are this machine
    expired = f"{prefix}app-8001.{stamp(NOW - timedelta(days=40))}.log.gz"
    unexpired = f"{prefix}app-8001.{stamp(NOW - timedelta(days=20))}.log.gz"
    for key in (expired, unexpired):
        bucket.client.put_object(Bucket=bucket.name, Key=key, Body=gzip.compress(b"{}\n"))

    dry = ops_task("archive-logs", "--dry-run")
    assert f"would compress {old_name}" in dry.output and "dry run: nothing changed" in dry.output
    assert (folder / old_name).exists() and keys(bucket, prefix) == sorted([expired, unexpired])

    # The bucket does not exist for this run: nothing may be deleted locally.
    broken = remote.query(
        "export S3_BUCKET=no-such-bucket-here && "
        + cmd.ops_command(layout(remote), current_release(remote), "archive-logs"),
        check=False,
    )
    assert broken.exited == 1, broken.stdout + broken.stderr
    assert "FAILED" in broken.stdout and "the local file is kept" in broken.stdout
    assert (folder / f"{old_name}.gz").exists() and (folder / f"{recent_name}.gz").exists()
    assert gzip.decompress((folder / f"{old_name}.gz").read_bytes()).decode() == old_content

    def app_keys():  # archive-logs also rotates and uploads nginx's, cron's and the switch's logs
        return [key for key in keys(bucket, prefix) if "/app-" in key]

    assert app_keys() == sorted([expired, unexpired])

    result = ops_task("archive-logs")
    assert f"[{host.name}" in result.output and f"[{hosts[1].name}" in result.output
    assert not (folder / f"{old_name}.gz").exists(), "archived and older than 7 days: deleted locally"
    assert (folder / f"{recent_name}.gz").exists(), "archived but recent: kept locally"
    assert live.read_text() == '{"live": 1}\n'
    assert app_keys() == sorted([f"{prefix}{old_name}.gz", f"{prefix}{recent_name}.gz", unexpired])
    archived = bucket.client.get_object(Bucket=bucket.name, Key=f"{prefix}{old_name}.gz")["Body"].read()
    assert gzip.decompress(archived).decode() == old_content
    assert f"deleted expired archive {expired}" in result.output

    again = ops_task("archive-logs")
    assert f"uploaded {old_name}.gz" not in again.output and f"uploaded {recent_name}.gz" not in again.output
    assert "already archived" in again.output


KNOWN_END = datetime(2026, 1, 2, tzinfo=UTC)


def request(minutes_before_end: float, route: str, status: int, duration: float, request_id: str = "r") -> str:
    when = KNOWN_END - timedelta(minutes=minutes_before_end)
    return json.dumps(
        {
            "time": when.isoformat(),
            "level": "INFO",
            "event": "http.request",
            "message": "request",
            "request_id": request_id,
            "method": "GET",
            "route": route,
            "path": route,
            "status": status,
            "duration_ms": duration,
            "user_id": None,
            "client": "127.0.0.1",
        }
    )


def test_stats_over_known_logs_gives_exact_percentiles(ops_task, deployed, hosts, tmp_path):
    # host A: /api/v1/a, 1..100 ms, five of them 500; host B: /api/v1/b, 151..250 ms.
    lines_a = [request(i + 1, "/api/v1/a", 500 if i < 5 else 200, float(i + 1)) for i in range(100)]
    lines_a += [
        json.dumps(
            {
                "time": (KNOWN_END - timedelta(minutes=3)).isoformat(),
                "event": "db.slow_query",
                "duration_ms": 1500.0,
                "statement": "SELECT 1",
            }
        )
    ] * 2
    lines_a += [request(60 * 25, "/api/v1/a", 200, 9999.0), "not json"]  # outside the window; garbage
    # A failed deploy's gate probing a standby instance: not client traffic, counted apart.
    lines_a += [request(2, "/health/ready", 503, 0.4, f"gate-probe-77-{n}") for n in range(1, 31)]
    lines_b = [request(i + 1, "/api/v1/b", 200, float(151 + i)) for i in range(100)]
    for host, lines in zip(hosts, (lines_a, lines_b)):
        path = logs_dir(deployed, host) / "app-9999.log"
        path.write_text("\n".join(lines) + "\n")
        chown_tree(path, deployed.sshd.user)
    history = tmp_path / "history.jsonl"
    result = ops_task(
        "stats", "--end", KNOWN_END.isoformat(), "--window-hours", "24", "--json", "--history", str(history)
    )
    merged = json.loads(result.output[result.output.index("{") : result.output.rindex("}") + 1])
    requests = merged["requests"]
    assert requests["requests"] == 200 and requests["server_errors"] == 5 and requests["error_rate"] == 0.025
    assert (requests["p50_ms"], requests["p95_ms"], requests["p99_ms"]) == (100.0, 240.0, 248.0)
    a, b = requests["routes"]["/api/v1/a"], requests["routes"]["/api/v1/b"]
    assert (a["p50_ms"], a["p95_ms"], a["p99_ms"], a["p99_ok"]) == (50.0, 95.0, 99.0, True)
    assert (b["p50_ms"], b["p95_ms"], b["p99_ms"], b["p99_ok"]) == (200.0, 245.0, 249.0, False)
    assert requests["routes_over_target"] == ["/api/v1/b"] and requests["p99_ok"] is False
    assert requests["slow_queries"] == 2 and requests["unparsable_lines"] == 2  # "not json" and app-7777.log's line
    assert requests["gate_probes"] == 30 and "/health/ready" not in requests["routes"]
    for host in hosts:
        figures = merged["hosts"][host.name]
        ports = [i["port"] for i in figures["instances"]]
        assert len(ports) == len(host.instance_ports)
        assert set(ports) <= set(getattr(host, "all_ports", host.instance_ports))
        assert all(i["rss_bytes"] > 10_000_000 for i in figures["instances"])
        assert figures["system"]["memory"]["total_bytes"] > 0 and len(figures["system"]["load"]) == 3
        assert figures["release"]["version"] == "vA"
    database = merged["database"]
    assert database["size_bytes"] > 1_000_000 and database["connections"]
    assert 0 < database["cache_hit_ratio"] <= 1
    sizes = [t["total_bytes"] for t in database["tables"]]
    assert len(sizes) == 10 and sizes == sorted(sizes, reverse=True)  # the ten largest of the schema
    assert all(t["dead_tuples"] >= 0 and t["live_tuples"] >= 0 for t in database["tables"])
    record = json.loads(history.read_text().splitlines()[-1])
    assert record["p99_ms"] == 248.0 and record["requests"] == 200

    table = ops_task("stats", "--end", KNOWN_END.isoformat(), "--history", str(history)).output
    assert "p50 100.0  p95 240.0  p99 248.0" in table and "OVER TARGET" in table
    assert "(error rate 2.50%)" in table and "deploy gate and health probes (not counted above): 30" in table
    assert re.search(r"/api/v1/b\s+100\s+0\.00%\s+200\.0\s+245\.0\s+249\.0\s+OVER", table), table
    assert len(history.read_text().splitlines()) == 2


def test_html_report_draws_its_charts_in_headless_chromium(ops_task, hosts, tmp_path):
    history = tmp_path / "history.jsonl"
    report = tmp_path / "report.html"
    # Client traffic through nginx for the latency lines: the deploy gate's probes do not count.
    for host in hosts:
        for _ in range(5):
            with urllib.request.urlopen(f"http://{host.address}:{host.nginx_port}/health/live", timeout=10) as answer:
                assert answer.status == 200
    for _ in range(3):
        ops_task("stats", "--history", str(history), "--html", str(report))
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            f"file://{report}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 4
    paths = re.findall(r'<path class="series" data-series="([^"]+)" d="(M[^"]+)"', dom.stdout)
    drawn = {name for name, d in paths if d.count("L") >= 2}  # three samples: a real line
    assert {"p50", "p95", "p99", "5xx error rate", "database size"} <= drawn, drawn
    assert any(name.endswith(" CPU") for name in drawn) and any(name.endswith(" memory") for name in drawn)
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=800,1200",
            f"file://{report}",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000


def test_maintenance_runs_every_step_and_reports_durations(ops_task, backup_task, hosts):
    assert re.search(r"backup \d{8}T\d{6}Z-\w+: complete", backup_task("backup").output)
    result = ops_task("maintenance", "--budget", "20")
    output = result.output
    print(output)  # the report, for the CI log
    first, second = hosts[0].name, hosts[1].name
    for step in ("vacuum-analyze", "reindex", "archive-logs", "verify-backup", "check-wallets"):
        assert re.search(rf"\] {step}\s+ok\s+\d+\.\ds", output), (step, output)
    # Without pip-audit's database the audit did not do its job: skipped, never ok.
    audited = re.search(r"\] dependency-audit\s+ok\s+\d+\.\ds .*pip-audit: 0 known", output)
    unaudited = re.search(r"\] dependency-audit\s+skipped\s+\d+\.\ds\s+pip-audit: skipped: ", output)
    assert audited or unaudited, output
    assert "advisory file" in output
    assert re.search(rf"\[{second} [^\]]*\] vacuum-analyze\s+skipped\s+0\.0s\s+runs on another host", output), output
    assert f"[{first}" in output and "failed: none" in output


def test_maintenance_stops_before_the_window_ends_and_says_what_it_skipped(ops_task):
    result = ops_task("maintenance", "--budget", "0.75", "--host", "host-2")
    assert re.search(r"verify-backup\s+skipped\s+0\.0s\s+needs ~60s, the window ends", result.output), result.output
    assert re.search(r"vacuum-analyze\s+ok", result.output), result.output
    assert re.search(r"skipped: [^\n]*verify-backup", result.output), result.output


def test_handoff_tells_the_next_person_what_they_need(ops_task, repo, hosts, remotes, tmp_path):
    output = tmp_path / "handoff.md"
    ops_task("handoff", "--output", str(output))
    text = output.read_text()
    current = current_release(remotes[0])
    for host in hosts:
        assert re.search(rf"\| {host.name} \| {current} \| vA \| {repo.commit_of('vA')[:12]} \|", text), text
        assert len(re.findall(rf"- OK {host.name} app-\d+ ready", text)) == len(host.instance_ports), text
    assert re.search(r"\| deploy \| vA \| ok \|", text)
    assert re.search(r"- Last backup: \d{8}T\d{6}Z-\w+ at ", text), text
    assert "- Last verified restore: " in text and " passed at " in text
    assert "## Last 24 hours" in text and "requests, error rate" in text
    known = (repo.path / "docs" / "known-issues.md").read_text()
    first_issue = re.search(r"^## (.+)$", known, re.MULTILINE)[1]
    assert f"## {first_issue}" in text
    # The maintenance tests above ran a window on every host; each left its record for this section.
    last_window = text.split("## Last maintenance window")[1].split("## Next maintenance window")[0]
    for host in hosts:
        assert re.search(
            rf"- {host.name}: \d{{4}}-\d\d-\d\d \d\d:\d\d–\d\d:\d\d UTC, ok: done in \d+\.\ds; ", last_window
        ), last_window
    assert "OVERDUE" not in last_window
    assert re.search(r"Sunday \d{4}-\d{2}-\d{2} 02:00–03:00 UTC", text)
    assert "## Escalation path" in text and "roll back" in text.split("## Escalation path")[1]


def test_failover_drill_recovers_app_database_and_backup_within_the_rto(ops_task, deployed, hosts):
    asyncio.run(load_demo_seed(deployed.postgres.dsn(DATABASE)))  # data worth checking after the crash
    result = ops_task("drill", timeout=600)
    output = result.output
    print(output)  # the timings against the RTO, for the CI log
    for step in (
        "baseline",
        "crash: SIGKILL app",
        "crash: stop the database abruptly",
        "database back",
        "app back",
        "health gate",
        "data: row counts",
        "fresh backup",
    ):
        assert re.search(rf"{re.escape(step)}[^\n]*\s+ok\s+\d+\.\ds", output), (step, output)
    assert "against an RTO of 60 min (3600s): within" in output
    killed = set(re.findall(r"killed:((?: \d+)+)", output))
    assert len(killed) == 2 and all(len(k.split()) == 1 + len(hosts[0].instance_ports) for k in killed), output
    rows = int(re.search(r"data: row counts, wallets, schema: ok in [\d.]+s \(all (\d+) rows still there", output)[1])
    assert rows > 20, output
    assert "every wallet matches" in output and "PASSED" in output


def test_drill_refuses_production(ops_task, deployed, tmp_path):
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(deployed.inventory_path.read_text().replace("sandbox", "production"))
    result = ops_task("drill", "--inventory", str(inventory), check=False)
    assert result.returncode == 1 and "never runs on production" in result.output
    assert "drill: baseline" not in result.output, "refused before any step"
