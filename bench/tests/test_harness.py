"""The API benchmark's builders: the nginx front it measures (production's own renderer), its argv,
the instances' environment, the header, the table rows and the target verdicts."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bench import api_bench, cpu, instances, kernel, measure, scenarios, table, wrk
from bench.front import NginxFront, bench_host, front_dirs, front_files, nginx_argv, upstream_conf
from bench.stalls import Lateness, StallWatch
from deploy.commands import Layout
from devtools.local_postgres import free_port

LAYOUT = Layout("/tmp/cnb-bench-x/front")

GOLDEN_NGINX_CONF = """\
# Managed by `invoke provision`: nginx of the deploy user, private to /tmp/cnb-bench-x/front.
worker_processes 1;
pid /tmp/cnb-bench-x/front/nginx/nginx.pid;
error_log /tmp/cnb-bench-x/front/shared/logs/nginx-error.log warn;

events {
    worker_connections 1024;
}

http {
    # Buffered: one write per 64 KiB of lines (or per second) instead of one per request.
    access_log /tmp/cnb-bench-x/front/shared/logs/nginx-access.log combined buffer=64k flush=1s;
    client_body_temp_path /tmp/cnb-bench-x/front/nginx/tmp/client_body;
    proxy_temp_path /tmp/cnb-bench-x/front/nginx/tmp/proxy;
    fastcgi_temp_path /tmp/cnb-bench-x/front/nginx/tmp/fastcgi;
    uwsgi_temp_path /tmp/cnb-bench-x/front/nginx/tmp/uwsgi;
    scgi_temp_path /tmp/cnb-bench-x/front/nginx/tmp/scgi;
    # Above the app's own limit (MAX_BODY_BYTES, 1 MiB by default), so that the app answers API.md's
    # JSON 413, and 404/405 before it (§1.7); at 1m nginx answered its own HTML 413 first. This one
    # only stops absurd bodies.
    client_max_body_size 16m;
    server_tokens off;

    # The live instances. Over Unix sockets it names each slot's symlink, which a switch repoints
    # without a reload (docs/adr/0008); over TCP a switch rewrites it and reloads.
    include /tmp/cnb-bench-x/front/nginx/upstream.conf;

    # Login and registration per client address (API.md §2.3): each costs a password hash, so one
    # address cannot fill every instance's hashing queue. POST only: a preflight costs nothing.
    map $request_method $clicknback_credentials_client {
        POST $binary_remote_addr;
        default "";
    }
    limit_req_zone $clicknback_credentials_client zone=clicknback_credentials:10m rate=30r/m;
    limit_req_status 429;
    limit_req_log_level warn;

    # The request id of nginx's own answers: the client's X-Request-ID when API.md §1.4 accepts it.
    map $http_x_request_id $clicknback_request_id {
        "~^[A-Za-z0-9._:-]{1,128}$" $http_x_request_id;
        default $request_id;
    }

    server {
        listen 127.0.0.1:9000;

        # When no instance can answer (all down, or past proxy_read_timeout), nginx answers itself:
        # in API.md's JSON envelope, as 503 with Retry-After, not an HTML 502/504 page that clients
        # cannot parse. An instance's own answers, its readiness 503 included, pass through as they are.
        error_page 502 504 =503 @unavailable;
        location @unavailable {
            default_type application/json;
            add_header X-Request-ID $clicknback_request_id always;
            add_header Retry-After 5 always;
            return 503 '{"error": {"code": "SERVICE_UNAVAILABLE", "message": "Service unavailable. Please retry later.", "details": {}}}';
        }

        # A request line or one header line over nginx's buffers (8k): nginx answers before any
        # instance sees it, in API.md's envelope as the instances do (414, and 431 for its 494).
        error_page 414 /__uri_too_long;
        error_page 494 =431 @headers_too_large;
        location = /__uri_too_long {  # a URI, not a named location: the request had none nginx could read
            internal;
            default_type application/json;
            add_header X-Request-ID $clicknback_request_id always;
            return 414 '{"error": {"code": "URI_TOO_LONG", "message": "Request target exceeds 8192 bytes.", "details": {"max_bytes": 8192}}}';
        }
        location @headers_too_large {
            default_type application/json;
            add_header X-Request-ID $clicknback_request_id always;
            return 431 '{"error": {"code": "HEADERS_TOO_LARGE", "message": "Request headers exceed 8192 bytes.", "details": {"max_bytes": 8192}}}';
        }

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_connect_timeout 2s;
        proxy_read_timeout 30s;
        # An instance that is stopping refuses connections: try the next one instead of failing.
        proxy_next_upstream error timeout http_502 http_503;
        proxy_next_upstream_tries 3;

        location / {
            proxy_pass http://clicknback_app;
        }

        # A burst of 10, then one every 2 s per address; beyond that nginx answers 429 itself, in
        # API.md's JSON envelope. (A location's own error_page replaces the server's: both are here.)
        location ~ ^/api/v1/(auth/login|users)/?$ {
            limit_req zone=clicknback_credentials burst=10 nodelay;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            error_page 429 @too_many_requests;
            error_page 502 504 =503 @unavailable;
            proxy_pass http://clicknback_app;
        }

        location @too_many_requests {
            default_type application/json;
            add_header X-Request-ID $clicknback_request_id always;
            add_header Retry-After 2 always;
            return 429 '{"error": {"code": "TOO_MANY_REQUESTS", "message": "Too many requests from this address. Please retry later.", "details": {"retry_after_seconds": 2}}}';
        }
    }
}
"""

GOLDEN_UPSTREAM = """\
upstream clicknback_app {
    least_conn;
    server unix:/tmp/cnb-bench-x/front/run/slot-0.sock max_fails=0;
    server unix:/tmp/cnb-bench-x/front/run/slot-1.sock max_fails=0;
    keepalive 128;
    keepalive_timeout 2s;
}
"""


@pytest.fixture
def host():
    return bench_host(LAYOUT.root, 9000, (8001, 8002))


def directives(conf: str) -> str:
    """The conf without its comment lines: comments change nothing nginx does."""
    return "\n".join(line for line in conf.splitlines() if not line.lstrip().startswith("#"))


def test_front_is_the_production_nginx_conf_on_loopback_under_the_temp_root(host):
    # A change to a directive of deploy/templates/nginx.conf.tmpl changes what the bench measures:
    # this golden string is the reminder to rerun the benchmark and update docs/benchmarks.md.
    files = front_files(LAYOUT, host)
    assert list(files) == ["/tmp/cnb-bench-x/front/nginx/nginx.conf", "/tmp/cnb-bench-x/front/nginx/upstream.conf"]
    assert directives(files["/tmp/cnb-bench-x/front/nginx/nginx.conf"]) == directives(GOLDEN_NGINX_CONF)
    assert files["/tmp/cnb-bench-x/front/nginx/upstream.conf"] == GOLDEN_UPSTREAM


def test_upstream_keepalive_experiment_replaces_productions_cache_size(host):
    assert upstream_conf(host, 32) == GOLDEN_UPSTREAM.replace("keepalive 128;", "keepalive 32;")
    assert upstream_conf(host, 0) == GOLDEN_UPSTREAM


def test_upstream_keepalive_experiment_adds_a_keepalive_if_production_has_none(host, monkeypatch):
    from bench import front

    monkeypatch.setattr(
        front,
        "nginx_upstream_conf",
        lambda host, ports: "upstream clicknback_app {\n    least_conn;\n    server 127.0.0.1:8001 max_fails=0;\n}\n",
    )
    assert front.upstream_conf(host, 64) == (
        "upstream clicknback_app {\n    least_conn;\n    server 127.0.0.1:8001 max_fails=0;\n    keepalive 64;\n}\n"
    )


def test_nginx_runs_in_the_foreground_with_productions_prefix_conf_and_error_log():
    assert nginx_argv(LAYOUT, "/usr/sbin/nginx") == [
        "/usr/sbin/nginx",
        "-p",
        "/tmp/cnb-bench-x/front/nginx/",
        "-c",
        "/tmp/cnb-bench-x/front/nginx/nginx.conf",
        "-e",
        "/tmp/cnb-bench-x/front/shared/logs/nginx-error.log",
        "-g",
        "daemon off;",
    ]
    assert front_dirs(LAYOUT) == ["/tmp/cnb-bench-x/front/nginx/tmp", "/tmp/cnb-bench-x/front/shared/logs"]


def test_instances_get_productions_log_settings_and_the_bench_overrides():
    env = instances.server_env("postgresql://bench@127.0.0.1:5999/bench", Path("/tmp/x/app-8001.log"))
    assert {key: value for key, value in env.items() if key != "OAUTH_HASH_KEY"} == {
        "DATABASE_URL": "postgresql://bench@127.0.0.1:5999/bench",
        "LOG_FORMAT": "json",
        "LOG_FILE": "/tmp/x/app-8001.log",
        "PYTHONUNBUFFERED": "1",
        "ENV_FILE": "/dev/null",
        "SANIC_REAL_IP_HEADER": "x-real-ip",
        "PURCHASE_JOB_ENABLED": "false",
        "LOGIN_MAX_FAILURES": "1000000",
    }
    assert len(env["OAUTH_HASH_KEY"]) >= 32


def test_wrk_argv_rounds_to_whole_seconds_of_at_least_one():
    assert wrk.wrk_argv("http://127.0.0.1:9000", "/tmp/s.lua", 64, 0.4) == [
        "wrk",
        "-t",
        "1",
        "-c",
        "64",
        "-d",
        "1s",
        "--timeout",
        "10s",
        "-s",
        "/tmp/s.lua",
        "http://127.0.0.1:9000",
    ]
    assert wrk.wrk_argv("http://h", "s", 16, 2.6)[6] == "3s"


SHAPE = {
    "instances": 2,
    "front": "nginx",
    "upstream_keepalive": 0,
    "cpus": 2,
    "load_average_at_start": [0.38, 0.8, 1.02],
    "duration_s": 3,
    "warmup_s": 1,
    "database_over": "socket",
    "instances_over": "unix",
    "scheduler": "scheduler autogroup off (as production)",
}


def test_header_names_the_shape_cpus_load_and_timing():
    assert table.shape_line(SHAPE) == (
        "shape: 2 instance(s) behind nginx (production config); PostgreSQL over its Unix socket, commits "
        "flushed to disk (as production); 2 CPUs; "
        "scheduler autogroup off (as production); load average at start 0.38 0.80 1.02; 3s per run, "
        "after a 1s warm-up"
    )
    direct = {
        **SHAPE,
        "instances": 1,
        "front": "direct",
        "warmup_s": 0,
        "database_over": "tcp",
        "instances_over": "tcp",
    }
    assert table.shape_line(direct) == (
        "shape: 1 instance(s) wrk direct, no nginx (profiling shape, not production); "
        "PostgreSQL over loopback TCP, commits flushed to disk (as production); 2 CPUs; "
        "scheduler autogroup off (as production); "
        "load average at start 0.38 0.80 1.02; 3s per run, no warm-up"
    )
    assert "upstream keepalive 32, NOT as production" in table.shape_line({**SHAPE, "upstream_keepalive": 32})
    assert "behind nginx (instances over tcp, NOT as production)" in table.shape_line(
        {**SHAPE, "instances_over": "tcp"}
    )
    assert "(production config)" in table.shape_line({**SHAPE, "upstream_keepalive": 128})
    assert table.shape_line({**SHAPE, "standby": "none"}) == table.shape_line(SHAPE)
    assert table.shape_line({**SHAPE, "standby": "async"}).endswith("; streaming standby, asynchronous")
    assert table.shape_line({**SHAPE, "standby": "sync"}).endswith(
        "; streaming standby, synchronous (each commit waits for the standby's flush)"
    )


def test_header_names_the_cpu_model_when_the_machine_says_it():
    assert "; 2 CPUs (AMD EPYC 9454P 48-Core Processor); scheduler" in table.shape_line(
        {**SHAPE, "cpu_model": "AMD EPYC 9454P 48-Core Processor"}
    )
    assert table.shape_line({**SHAPE, "cpu_model": None}) == table.shape_line(SHAPE)


def test_cpu_model_is_read_from_the_first_model_name_line():
    cpuinfo = (
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n\n"
        "processor\t: 1\nmodel name\t: something else\n"
    )
    assert cpu.model_name(cpuinfo) == "AMD EPYC"
    assert cpu.model_name("processor\t: 0\nmodel name\t:\n") is None
    assert cpu.model_name("") is None


def test_core_loop_is_a_positive_time_and_its_note_says_how_to_read_it():
    milliseconds = cpu.core_loop_ms()
    assert milliseconds > 0
    assert cpu.core_loop_note(41.4) == (
        "core speed: a fixed single-core loop took 41 ms (lower is faster; compare runs by it)"
    )


def figures(rps: float, p99_ms: float, errors: int = 0) -> dict:
    return {"rps": rps, "p50_us": 1500, "p99_us": int(p99_ms * 1000), "errors": errors}


@pytest.mark.parametrize(
    ("scenario", "level", "row", "verdict"),
    [
        ("users_me", 64, figures(3100, 29.9), ">=3000 rps, p99<=30ms: met"),
        ("users_me", 64, figures(2999, 10), ">=3000 rps, p99<=30ms: NOT met"),
        ("users_me", 64, figures(5000, 30.5), ">=3000 rps, p99<=30ms: NOT met"),
        ("users_me", 64, figures(5000, 10, errors=1), ">=3000 rps, p99<=30ms: NOT met"),
        ("users_me", 16, figures(100, 500), ""),
        ("health_live_during_login_flood", 64, figures(10, 19), "p99<=20ms: met"),
        ("health_live_during_login_flood", 64, figures(9000, 21), "p99<=20ms: NOT met"),
        ("offers_active", 64, figures(3000, 40), ">=3000 rps, p99<=40ms: met"),
        ("purchase_ingest", 64, figures(2000, 60), ">=2000 rps, p99<=60ms: met"),
        ("purchase_ingest", 64, figures(1999, 40), ">=2000 rps, p99<=60ms: NOT met"),
        ("wallet_summary", 64, figures(2000, 20), ">=3000 rps, p99<=30ms: NOT met"),
        ("merchants_admin", 64, figures(10, 999), ""),
    ],
)
def test_target_verdicts(scenario, level, row, verdict):
    assert scenarios.target_verdict(scenario, level, row) == verdict


def test_row_shows_figures_cpu_per_request_others_and_target():
    row = {
        **figures(3123.4, 27.55),
        "p50_us": 12345,
        "scenario": "users_me",
        "concurrency": 64,
        "service_cpu_ms": 0.6214,
        "others_cpu": 0.034,
        "max_stall_ms": 31.6,
        "stalls": 2,
        "target": ">=3000 rps, p99<=30ms: met",
    }
    assert table.TABLE_HEADER == (
        "scenario                            conc     req/s   p50 ms   p99 ms  errors  cpu/req  others  stall  target"
    )
    assert table.row_line(row) == (
        "users_me                              64      3123    12.35    27.55       0    0.621      3%     32"
        "  >=3000 rps, p99<=30ms: met"
    )
    no_proc = {**row, "target": "", "others_cpu": None, "service_cpu_ms": None, "max_stall_ms": None}
    assert table.row_line(no_proc).endswith("       0        -       -      -")


def test_cpu_figures_split_the_service_into_parts_apart_from_the_load_generator_and_others():
    parts = {"service": 300, "app": 200, "nginx": 40, "postgres": 60}
    before = cpu.Snapshot(busy=1000, total=5000, groups={"bench": 400, **parts})
    after = cpu.Snapshot(
        busy=1900, total=6000, groups={"bench": 1100, "service": 900, "app": 600, "nginx": 100, "postgres": 200}
    )
    # 600 service ticks at 100/s = 6 CPU seconds, over 3000 requests = 2 ms each; others: 200 of 1000 ticks.
    assert cpu.cpu_seconds(before, after, "service", 100) == 6.0
    ms = 1000 / cpu.ticks_per_second() / 3000
    assert measure.cpu_figures(before, after, 3000) == {
        "others_cpu": 0.2,
        "service_cpu_ms": round(600 * ms, 3),
        "app_cpu_ms": round(400 * ms, 3),
        "nginx_cpu_ms": round(60 * ms, 3),
        "postgres_cpu_ms": round(140 * ms, 3),
    }
    # With --standby the standby's cluster is a part of its own (another host in production).
    with_standby = measure.cpu_figures(
        cpu.Snapshot(1000, 5000, {**before.groups, "standby": 10}),
        cpu.Snapshot(1900, 6000, {**after.groups, "standby": 40}),
        3000,
    )
    assert with_standby["standby_cpu_ms"] == round(30 * ms, 3)
    assert measure.cpu_figures(None, after, 3000) == {
        "others_cpu": None,
        "service_cpu_ms": None,
        "app_cpu_ms": None,
        "nginx_cpu_ms": None,
        "postgres_cpu_ms": None,
    }


def test_lateness_keeps_the_worst_wake_up_and_counts_the_stalls():
    lateness = Lateness()
    for late_ms in (0.05, 12.0, 0.4, 31.64, 9.99):
        lateness.add(late_ms)
    assert lateness.report() == {"max_stall_ms": 31.6, "stalls": 2}
    assert Lateness().report() == {"max_stall_ms": 0.0, "stalls": 0}


def test_the_stall_watcher_reports_between_resets_or_says_why_it_cannot():
    watch = StallWatch()
    try:
        if not watch.available:  # an unprivileged run: the bench prints this note and no figure
            assert watch.note.startswith("unavailable:") and watch.report() is None
            return
        watch.reset()
        report = watch.report()
        assert set(report) == {"max_stall_ms", "stalls"} and report["max_stall_ms"] >= 0
    finally:
        watch.close()
    assert watch._process.returncode == 0


def test_machine_jiffies_busy_is_user_nice_system_steal_of_everything():
    text = "cpu  1498006 44984 444367 603353 4279 11 10194 15357 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
    assert cpu.parse_machine_jiffies(text) == (
        1498006 + 44984 + 444367 + 15357,
        1498006 + 44984 + 444367 + 603353 + 4279 + 11 + 10194 + 15357,
    )
    with pytest.raises(ValueError):
        cpu.parse_machine_jiffies("intr 1 2 3\n")


def test_process_stat_reads_ppid_and_own_plus_reaped_children_time_past_a_tricky_name():
    text = "4242 (python -m (x) y) S 17 4242 26159 0 -1 4194304 127 0 0 0 300 40 7 3 20 0 1 0 1313407 3133440"
    assert cpu.parse_process_stat(text) == (17, 300 + 40 + 7 + 3)


def test_tree_jiffies_sums_roots_and_all_descendants_only():
    processes = {1: (0, 1000), 10: (1, 5), 11: (10, 7), 12: (11, 11), 20: (1, 100), 30: (1, 13), 31: (30, 17)}
    assert cpu.tree_jiffies(processes, {10, 30, 999}) == 5 + 7 + 11 + 13 + 17


def test_others_share_is_machine_busy_minus_ours_over_all_cpu_time():
    before = cpu.Snapshot(busy=1000, total=5000, groups={"bench": 400})
    assert cpu.others_share(before, cpu.Snapshot(1900, 6000, {"bench": 1100})) == pytest.approx(0.2)
    assert cpu.others_share(before, cpu.Snapshot(1700, 6000, {"bench": 1200})) == 0.0  # rounding between reads
    assert cpu.others_share(before, before) == 0.0


def test_snapshot_of_this_process_tree_counts_its_own_cpu_time():
    before = cpu.snapshot({"me": {os.getpid()}})
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn CPU: the thing being counted
        pass
    after = cpu.snapshot({"me": {os.getpid()}})
    assert after.groups["me"] > before.groups["me"] and after.busy >= before.busy and after.total > before.total


def test_passes_take_a_count_of_at_least_one_and_repeat_is_their_old_name():
    assert api_bench.parse_args([]).passes == 1
    assert api_bench.parse_args(["--passes", "4"]).passes == 4
    assert api_bench.parse_args(["--repeat", "3"]).passes == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["--instances", "2", "--direct"],
        ["--instances", "0"],
        ["--passes", "0"],
        ["--soak", "--passes", "2"],
        ["--instances", "1", "--direct", "--upstream-keepalive", "8"],
    ],
)
def test_contradictory_shapes_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        api_bench.parse_args(argv)
    assert exit_info.value.code == 2


def test_defaults_are_the_production_shape_with_a_warm_up():
    args = api_bench.parse_args([])
    assert (args.instances, args.direct, args.upstream_keepalive, args.warmup, args.duration) == (2, False, 0, 1, 5)


class _Echo(BaseHTTPRequestHandler):
    """A stand-in instance: answers every GET with the headers nginx forwarded."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = f"{self.server.server_port} {self.headers.get('X-Request-ID')} {self.headers.get('X-Forwarded-For')}"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_front_balances_over_both_instances_and_passes_request_ids_through():
    instances = [ThreadingHTTPServer(("127.0.0.1", 0), _Echo) for _ in range(2)]
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in instances]
    for thread in threads:
        thread.start()
    root = Path(tempfile.mkdtemp(prefix="cnb-bench-test-"))
    os.chmod(root, 0o755)  # nginx workers run as nobody when the tests run as root
    front = NginxFront(
        root / "front",
        free_port(),
        tuple(server.server_port for server in instances),
        binary=shutil.which("nginx"),
        instance_listen="tcp",
    )
    try:
        front.start()
        seen = set()
        for index in range(6):
            response = httpx.get(front.url + "/api/v1/users/me", headers={"X-Request-ID": f"bench-{index}"})
            port, request_id, forwarded_for = response.text.split()
            assert (response.status_code, request_id, forwarded_for) == (200, f"bench-{index}", "127.0.0.1")
            seen.add(int(port))
        assert seen == {server.server_port for server in instances}
    finally:
        front.stop()
        for server in instances:
            server.shutdown()
            server.server_close()
        shutil.rmtree(root, ignore_errors=True)
    assert front.process.returncode is not None


class _OkOnce(BaseHTTPRequestHandler):
    """A stand-in instance that closes every connection after its answer (no upstream keepalive)."""

    protocol_version = "HTTP/1.0"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_with_no_instance_answering_nginx_answers_api_md_json_503_with_retry_after_and_the_request_id():
    instance = ThreadingHTTPServer(("127.0.0.1", 0), _OkOnce)
    thread = threading.Thread(target=instance.serve_forever, daemon=True)
    thread.start()
    root = Path(tempfile.mkdtemp(prefix="cnb-bench-test-"))
    os.chmod(root, 0o755)  # nginx workers run as nobody when the tests run as root
    front = NginxFront(
        root / "front", free_port(), (instance.server_port,), binary=shutil.which("nginx"), instance_listen="tcp"
    )
    try:
        front.start()  # returns once the instance answered through nginx
        instance.shutdown()
        instance.server_close()  # from now on nginx's connections are refused: its own 502
        for sent, expected in (
            ({"X-Request-ID": "client-7"}, "client-7"),
            ({"X-Request-ID": "not valid!"}, None),
            ({}, None),
        ):
            answer = httpx.post(front.url + "/api/v1/purchases", json={}, headers=sent)
            assert answer.status_code == 503, answer.text
            assert answer.json() == {
                "error": {
                    "code": "SERVICE_UNAVAILABLE",
                    "message": "Service unavailable. Please retry later.",
                    "details": {},
                }
            }
            assert answer.headers["content-type"] == "application/json" and answer.headers["retry-after"] == "5"
            assert answer.headers["x-request-id"] == (expected or answer.headers["x-request-id"])
            assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", answer.headers["x-request-id"])
            assert answer.headers["x-request-id"] != "not valid!"
    finally:
        front.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_waiting_for_quiet_instances_returns_once_they_idle_and_gives_up_at_its_limit():
    import subprocess
    import sys

    idle = subprocess.Popen(["sleep", "30"])
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"]
    )
    try:
        assert measure.wait_until_quiet({"app": {idle.pid}}, window=0.1, limit=5) < 1
        assert measure.wait_until_quiet({"app": {busy.pid}}, window=0.1, limit=0.5) >= 0.5
    finally:
        for process in (idle, busy):
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("selection", "selected"),
    [
        ("", ["users_me", "login", "health_live_during_login_flood"]),
        ("users_me", ["users_me"]),
        ("login", ["login", "health_live_during_login_flood"]),
        ("users_me, login", ["users_me", "login", "health_live_during_login_flood"]),
        (",", ["users_me", "login", "health_live_during_login_flood"]),
        ("=login", ["login"]),
        ("=login,users", ["users_me", "login"]),
        ("=health_live", []),
    ],
)
def test_scenario_selection_takes_comma_separated_parts(selection, selected):
    names = ["users_me", "login", "health_live_during_login_flood"]
    assert [name for name in names if scenarios.scenario_selected(name, selection)] == selected


def test_bench_turns_autogroup_off_for_its_run_and_restores_the_machines_value(tmp_path):
    knob = tmp_path / "sched_autogroup_enabled"
    knob.write_text("1\n")
    with kernel.production_scheduler(knob=knob) as note:
        assert knob.read_text() == "0\n"
        assert note == "scheduler autogroup off for this run, as production (restored afterwards)"
    assert knob.read_text() == "1\n"
    with kernel.production_scheduler(keep=True, knob=knob) as note:
        assert knob.read_text() == "1\n" and note.startswith("scheduler autogroup ON, NOT as production")
    with pytest.raises(KeyboardInterrupt), kernel.production_scheduler(knob=knob):
        raise KeyboardInterrupt  # Ctrl-C mid-run: the value is still put back
    assert knob.read_text() == "1\n"


def test_autogroup_note_for_a_knob_already_off_missing_or_not_writable(tmp_path):
    knob = tmp_path / "sched_autogroup_enabled"
    knob.write_text("0\n")
    with kernel.production_scheduler(knob=knob) as note:
        assert note == "scheduler autogroup off (as production)"
    with kernel.production_scheduler(knob=tmp_path / "missing") as note:
        assert note == "no scheduler autogroup in this kernel (as production)"
    assert kernel.autogroup_note("1", "1").startswith("scheduler autogroup ON, NOT as production: run as root")
