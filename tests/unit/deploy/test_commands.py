"""Golden strings for every remote command the deploy tooling builds (what --dry-run prints)."""

from __future__ import annotations

import xmlrpc.client

import pytest

from deploy import commands as cmd
from deploy.commands import Layout
from deploy.inventory import parse_inventory

L = Layout("/srv/cnb")
REL = "20261127T010203Z-v1.2.3"
SUPCTL = "supervisorctl -c /srv/cnb/supervisor/supervisord.conf"
NGINX = "/usr/sbin/nginx -p /srv/cnb/nginx/ -c /srv/cnb/nginx/nginx.conf -e /srv/cnb/shared/logs/nginx-error.log"
RELOAD = (
    f'{NGINX} -q -t && if [ -s /srv/cnb/nginx/nginx.pid ] && kill -0 "$(cat /srv/cnb/nginx/nginx.pid)" '
    f"2>/dev/null; then {NGINX} -s reload; else {NGINX}; fi"
)


def parsed_host(extra: str = ""):
    return (
        parse_inventory(
            '[environments.p]\n[[environments.p.hosts]]\nname = "app1"\naddress = "10.0.0.5"\n'
            'deploy_root = "/srv/cnb"\nnginx_port = 8080\n' + extra
        )
        .environment("p")
        .hosts[0]
    )


@pytest.fixture
def host():
    return parsed_host()


@pytest.fixture
def tcp_host():
    """The same host with instance_listen = "tcp": instances on bind_address:port."""
    return parsed_host('instance_listen = "tcp"\n')


def ready_url(port: int) -> str:
    """The default ready_url of instance slot `port` under /srv/cnb: through its Unix socket."""
    return f"http+unix://%2Fsrv%2Fcnb%2Frun%2Fapp-{port}.sock/health/ready"


def test_layout_creates_every_folder_and_locks_down_shared():
    assert cmd.layout_command(L) == (
        "mkdir -p /srv/cnb/releases /srv/cnb/venvs /srv/cnb/shared/logs /srv/cnb/shared/logs/supervisor "
        "/srv/cnb/state /srv/cnb/supervisor/conf.d /srv/cnb/nginx/tmp /srv/cnb/run /srv/cnb/slots"
        " && chmod 700 /srv/cnb/shared"
    )


def test_the_writable_root_check_reads_only_and_climbs_to_the_folder_that_exists():
    assert cmd.writable_root_command(Layout("/srv/my cnb")) == (
        'd=\'/srv/my cnb\'; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; '
        '[ -d "$d" ] && [ -w "$d" ] || { echo "$d is not a folder the deploy user can write" >&2; exit 1; }'
    )


def test_write_file_is_atomic_and_quotes_content():
    assert cmd.write_file_command("/srv/cnb/x.conf", "a 'b'\n") == (
        "printf '%s' 'a '\"'\"'b'\"'\"'\n' > /srv/cnb/x.conf.tmp && chmod 644 /srv/cnb/x.conf.tmp"
        " && mv -f /srv/cnb/x.conf.tmp /srv/cnb/x.conf"
    )


def test_env_file_gets_mode_600_before_it_is_moved_into_place():
    assert cmd.install_env_file_command(L, "/srv/cnb/shared/.env.upload") == (
        "chmod 600 /srv/cnb/shared/.env.upload && mv -f /srv/cnb/shared/.env.upload /srv/cnb/shared/.env"
    )


def test_release_id_and_metadata():
    assert cmd.release_id("20261127T010203Z", "v1.2.3") == REL
    assert cmd.release_metadata("v1", "abc", "2026-11-27T01:02:03+00:00") == (
        '{"commit": "abc", "deployed_at": "2026-11-27T01:02:03+00:00", "version": "v1"}'
    )
    with pytest.raises(ValueError, match="only letters"):
        cmd.release_id("20261127T010203Z", "v1; rm -rf /")


def test_extract_release_unpacks_the_upload_and_writes_release_json():
    assert cmd.extract_release_command(L, REL, '{"a": 1}') == (
        f"rm -rf /srv/cnb/releases/{REL} && mkdir -p /srv/cnb/releases/{REL}"
        f" && tar -xzf /srv/cnb/releases/.upload-{REL}.tar.gz -C /srv/cnb/releases/{REL}"
        f" && rm -f /srv/cnb/releases/.upload-{REL}.tar.gz"
        f" && printf '%s\\n' '{{\"a\": 1}}' > /srv/cnb/releases/{REL}/RELEASE.json"
    )


def test_venv_is_reused_by_lock_hash_and_built_only_when_incomplete():
    assert cmd.ensure_venv_command(L, REL, "abc123", "python3") == (
        "{ test -f /srv/cnb/venvs/abc123/.complete && echo venv-reused || { echo venv-building"
        " && rm -rf /srv/cnb/venvs/abc123 && python3 -m venv /srv/cnb/venvs/abc123"
        " && /srv/cnb/venvs/abc123/bin/python -m pip install --progress-bar off"
        f" --no-input --disable-pip-version-check -r /srv/cnb/releases/{REL}/requirements.lock"
        " && touch /srv/cnb/venvs/abc123/.complete && echo venv-built; }; }"
        f" && ln -sfn /srv/cnb/venvs/abc123 /srv/cnb/releases/{REL}/.venv"
    )


def test_current_switches_atomically_with_a_rename():
    assert cmd.switch_current_command(L, REL) == (
        f"ln -sfn /srv/cnb/releases/{REL} /srv/cnb/.current.tmp && mv -T /srv/cnb/.current.tmp /srv/cnb/current"
    )


def test_lock_is_exclusive_and_names_the_holder_when_taken():
    assert cmd.lock_acquire_command(L, '{"holder": "me"}') == (
        "mkdir -p /srv/cnb/state && { ( set -C; printf '%s\\n' '{\"holder\": \"me\"}' > /srv/cnb/state/deploy.lock )"
        " 2>/dev/null || { cat /srv/cnb/state/deploy.lock; exit 3; }; }"
    )
    assert cmd.lock_release_command(L, "tok") == (
        "if grep -qF tok /srv/cnb/state/deploy.lock 2>/dev/null; then rm -f /srv/cnb/state/deploy.lock; fi"
    )
    assert cmd.lock_release_command(L, None) == "rm -f /srv/cnb/state/deploy.lock"
    assert cmd.lock_status_command(L) == "cat /srv/cnb/state/deploy.lock 2>/dev/null || true"


def test_ledger_append_is_one_quoted_line():
    assert cmd.ledger_append_command(L, '{"a":"it\'s"}') == (
        "mkdir -p /srv/cnb/state && printf '%s\\n' '{\"a\":\"it'\"'\"'s\"}' >> /srv/cnb/state/ledger.jsonl"
    )


def test_prune_keeps_the_newest_and_the_protected():
    ids = [f"2026112{d}T000000Z-v{d}" for d in range(8)]
    doomed = cmd.releases_to_prune(ids, keep=5, protected={ids[1]})
    assert doomed == [ids[0], ids[2]]
    assert cmd.prune_command(L, doomed) == (f"rm -rf -- /srv/cnb/releases/{ids[0]} /srv/cnb/releases/{ids[2]}")
    assert cmd.prune_command(L, []) == "true"


def test_prune_counts_only_good_releases_and_keeps_the_newest_bad_one():
    good, bad1, bad2, bad3 = (
        "20261120T000000Z-v1",
        "20261121T000000Z-v2-broken",
        "20261122T000000Z-v3-broken",
        "20261123T000000Z-v4-broken",
    )
    ids = [good, bad1, bad2, bad3]
    # The operator's case: after failed deploys the only good release (current) must stay.
    assert cmd.releases_to_prune(ids, keep=2, protected={good}, bad={bad1, bad2, bad3}) == [bad1, bad2]
    # Even unprotected, a good release is never pushed out by bad ones.
    assert cmd.releases_to_prune(ids, keep=1, protected=set(), bad={bad1, bad2, bad3}) == [bad1, bad2]
    many = [f"2026112{d}T000000Z-v{d}" for d in range(8)]
    marked = {many[5], many[7]}
    # keep=3 good: v6, v4, v3; newest bad: v7; v5 (older bad) and v0-v2 go.
    assert cmd.releases_to_prune(many, keep=3, protected={many[6]}, bad=marked) == [many[0], many[1], many[2], many[5]]
    assert cmd.releases_to_prune([], keep=3, protected=set(), bad=set()) == []


def test_venvs_no_release_links_to_are_pruned():
    old, kept = "a" * 64, "b" * 64
    listing = f"{old}\n{kept}\nnot-a-venv\n--\n/srv/cnb/venvs/{kept}\n/srv/cnb/venvs/{kept}\n"
    assert cmd.unused_venvs(listing) == [old]
    assert cmd.unused_venvs("--\n") == []
    assert cmd.prune_venvs_command(L, [old]) == f"rm -rf -- /srv/cnb/venvs/{old}"
    assert cmd.prune_venvs_command(L, []) == "true"
    assert cmd.venv_links_command(L) == (
        "ls -1 /srv/cnb/venvs 2>/dev/null; echo --; for link in /srv/cnb/releases/*/.venv;"
        ' do readlink "$link" || true; done'
    )


def test_supervisor_commands():
    assert cmd.supervisor_ensure_running_command(L) == (
        f"{{ {SUPCTL} pid >/dev/null 2>&1 || supervisord -c /srv/cnb/supervisor/supervisord.conf; }}"
        f" && {SUPCTL} reread >/dev/null && {SUPCTL} update"
    )
    assert cmd.start_live_instances_command(L) == (
        f"if [ -s /srv/cnb/state/live_ports ] && [ -e /srv/cnb/current ]; then {SUPCTL} start"
        " $(sed 's/[0-9][0-9]*/app-&/g' /srv/cnb/state/live_ports) >/dev/null 2>&1; fi; true"
    )
    assert cmd.remove_stale_programs_command(L, (8001, 8002)) == (
        "find /srv/cnb/supervisor/conf.d -name 'app-*.conf' ! -name app-8001.conf ! -name app-8002.conf -delete"
    )


RPC = (
    "curl -sS -m 60 --unix-socket /srv/cnb/supervisor/supervisor.sock -H 'Content-Type: text/xml'"
    " --data-binary {} http://localhost/RPC2"
)


def rpc_call(method, *params):
    return xmlrpc.client.dumps(params, method)


def multicall(method, *names, extra=()):
    return rpc_call("system.multicall", [{"methodName": method, "params": [n, *extra]} for n in names])


def stop_one(port):
    return RPC.format(cmd.q(rpc_call("supervisor.stopProcess", f"app-{port}", True))) + " >/dev/null 2>&1"


def test_supervisor_is_driven_through_xmlrpc_on_its_socket():
    assert xmlrpc.client.loads(cmd.xmlrpc_request("supervisor.stopProcess", "app-8001", True)) == (
        ("app-8001", True),
        "supervisor.stopProcess",
    )
    calls = [("supervisor.startProcess", ["app-8101", False]), ("supervisor.startProcess", ["app-8102", False])]
    assert xmlrpc.client.loads(cmd.supervisor_multicall(calls)) == (
        ([{"methodName": m, "params": p} for m, p in calls],),
        "system.multicall",
    )
    assert xmlrpc.client.loads(cmd.xmlrpc_request("m", "a<&>b")) == (("a<&>b",), "m")
    assert "a&lt;&amp;&gt;b" in cmd.xmlrpc_request("m", "a<&>b")
    assert cmd.supervisor_rpc_command(L, "<x/>") == RPC.format("'<x/>'")


def test_instances_stop_in_parallel_each_waiting_for_its_process_to_exit():
    assert cmd.stop_instances_command(L, (8001, 8002)) == f"{{ {stop_one(8001)} & {stop_one(8002)} & wait; }}"


def test_instances_start_in_one_request_after_any_pending_stop():
    states = RPC.format(cmd.q(multicall("supervisor.getProcessInfo", "app-8101", "app-8102")))
    start = RPC.format(cmd.q(multicall("supervisor.startProcess", "app-8101", "app-8102", extra=(False,))))
    assert cmd.start_instances_command(L, (8101, 8102)) == (
        "( deadline=$(( $(date +%s) + 40 )); while { [ -s /srv/cnb/state/drain.pid ] && kill -0"
        ' "$(cat /srv/cnb/state/drain.pid)" 2>/dev/null; }'
        f' || {states} | grep -q \'<string>STOPPING</string>\'; do if [ "$(date +%s)" -ge "$deadline" ]; then'
        ' echo "app-8101 app-8102 still stopping after 40s"; exit 1; fi; sleep 0.1; done )'
        f" && {cmd.stop_instances_command(L, (8101, 8102))}"
        f" && {{ out=$({start}) && ! printf '%s' \"$out\" | grep -q faultCode"
        ' || { echo "supervisor refused to start app-8101 app-8102: $out"; false; }; }'
    )


def test_old_instances_drain_in_a_background_job_that_logs_its_duration():
    job = (
        f"began=$(date +%s.%N); {cmd.stop_instances_command(L, (8001, 8002))};"
        ' echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) stopped app-8001 app-8002 (replaced by R) in'
        ' $(awk "BEGIN { printf \\"%.2f\\", $(date +%s.%N) - $began }")s" >> /srv/cnb/shared/logs/switch.log;'
        ' if [ "$(cat /srv/cnb/state/drain.pid 2>/dev/null)" = "$$" ]; then rm -f /srv/cnb/state/drain.pid; fi'
    )
    assert cmd.drain_in_background_command(L, (8001, 8002), "replaced by R") == (
        f"{{ nohup sh -c {cmd.q(job)} >/dev/null 2>&1 & echo $! > /srv/cnb/state/drain.pid; }}"
    )


def test_reboot_starts_supervisord_the_live_instances_and_nginx():
    assert cmd.start_services_command(L) == (
        "supervisord -c /srv/cnb/supervisor/supervisord.conf; for attempt in 1 2 3 4 5 6 7 8 9 10; do"
        f" {SUPCTL} start $(sed 's/[0-9][0-9]*/app-&/g' /srv/cnb/state/live_ports) && break; sleep 1; done;"
        f" {NGINX}"
    )


def test_nginx_reload_checks_the_config_then_reloads_or_starts():
    assert cmd.nginx_reload_command(L) == RELOAD


def test_upstream_names_the_slots_over_unix_sockets_and_the_live_ports_over_tcp(host, tcp_host):
    slots = (
        "upstream clicknback_app {\n"
        "    least_conn;\n"
        "    server unix:/srv/cnb/run/slot-0.sock max_fails=0;\n"
        "    server unix:/srv/cnb/run/slot-1.sock max_fails=0;\n"
        "    keepalive 128;\n"
        "    keepalive_timeout 2s;\n"
        "}\n"
    )
    # The same text whichever ports are live: a switch over Unix sockets never rewrites it.
    assert cmd.nginx_upstream_conf(host, (8101, 8002)) == slots == cmd.nginx_upstream_conf(host, (8001, 8002))
    assert cmd.nginx_upstream_conf(tcp_host, (8101, 8002)) == (
        "upstream clicknback_app {\n"
        "    least_conn;\n"
        "    server 127.0.0.1:8101 max_fails=0;\n"
        "    server 127.0.0.1:8002 max_fails=0;\n"
        "    keepalive 128;\n"
        "    keepalive_timeout 2s;\n"
        "}\n"
    )


def test_nginx_keeps_idle_upstream_connections_shorter_than_a_draining_instance_waits():
    from server.drain import CLOSE_IDLE_AFTER_SECONDS
    from server.listen import PROXY_KEEPALIVE_SECONDS

    assert f"keepalive_timeout {PROXY_KEEPALIVE_SECONDS}s;" in cmd.nginx_upstream_conf(parsed_host(), (8001, 8002))
    assert CLOSE_IDLE_AFTER_SECONDS >= PROXY_KEEPALIVE_SECONDS + 1


def test_pointing_the_slots_renames_a_new_symlink_over_each_one(tmp_path):
    import dataclasses
    import subprocess

    root = tmp_path / "cnb"
    (root / "run").mkdir(parents=True)
    local = dataclasses.replace(parsed_host(), deploy_root=str(root))
    for live in ((8001, 8002), (8101, 8102), (8001, 8102)):
        subprocess.run(["sh", "-c", cmd.point_slots_command(local, live)], check=True, timeout=10)
        assert [(root / "run" / f"slot-{i}.sock").readlink().name for i in range(2)] == [
            f"app-{port}.sock" for port in live
        ]
    assert sorted(p.name for p in (root / "run").iterdir()) == ["slot-0.sock", "slot-1.sock"]
    assert "mv -T /srv/cnb/run/slot-0.sock.new /srv/cnb/run/slot-0.sock" in cmd.point_slots_command(
        parsed_host(), (8101, 8102)
    )


def test_live_ports_come_from_the_host_or_default_to_the_instance_ports(host):
    assert cmd.parse_live_ports("8101 8102\n", host) == (8101, 8102)
    assert cmd.parse_live_ports("8001 8102", host) == (8001, 8102)
    assert cmd.parse_live_ports("", host) == (8001, 8002)
    assert cmd.parse_live_ports("9000 9001", host) == (8001, 8002)  # ports changed in the inventory
    assert cmd.parse_live_ports("garbage", host) == (8001, 8002)


def test_prepare_starts_the_release_beside_the_live_one_and_gates_it(host):
    gate = cmd.readiness_poll_command(
        [ready_url(8101), ready_url(8102)],
        30,
        1.0,
        "python3",
        "/srv/cnb/supervisor/supervisor.sock",
        ["app-8101", "app-8102"],
    )
    steps = " && ".join(
        [
            'echo "@phase begin $(date +%s.%N)"',
            "{ grep -qF command=/srv/cnb/slots/app-8101/ /srv/cnb/supervisor/conf.d/app-8101.conf"
            " && grep -qF command=/srv/cnb/slots/app-8102/ /srv/cnb/supervisor/conf.d/app-8102.conf"
            " || { echo 'the supervisor programs predate slot links: run `invoke provision` first'; false; }; }",
            cmd.point_release_slots_command(L, REL, (8101, 8102)),
            cmd.start_instances_command(L, (8101, 8102)),
            'echo "@phase started $(date +%s.%N)"',
            gate,
            'echo "@phase ready $(date +%s.%N)"',
        ]
    )
    assert cmd.prepare_switch_command(L, host, REL, (8101, 8102)) == (
        f"echo $$ > /srv/cnb/state/prepare.pid && {{ {steps}; }}; status=$?; rm -f /srv/cnb/state/prepare.pid;"
        " exit $status"
    )
    prepare = cmd.prepare_switch_command(L, host, REL, (8101, 8102))
    # Neither nginx nor what a restart or a reboot starts (current, the live slots) moves here.
    assert "nginx" not in prepare and "/srv/cnb/current" not in prepare and "live_ports" not in prepare
    assert "app-8001" not in prepare and "app-8002" not in prepare


def test_standby_slots_are_repointed_one_atomic_rename_each():
    assert cmd.point_release_slots_command(L, REL, (8101, 8102)) == (
        f"ln -sfn /srv/cnb/releases/{REL} /srv/cnb/slots/app-8101.tmp"
        " && mv -T /srv/cnb/slots/app-8101.tmp /srv/cnb/slots/app-8101"
        f" && ln -sfn /srv/cnb/releases/{REL} /srv/cnb/slots/app-8102.tmp"
        " && mv -T /srv/cnb/slots/app-8102.tmp /srv/cnb/slots/app-8102"
    )


def test_current_moves_only_in_the_commit_with_the_drain_of_the_old_instances():
    assert cmd.commit_switch_command(L, REL, (8001, 8002)) == " && ".join(
        [
            cmd.switch_current_command(L, REL),
            cmd.drain_in_background_command(L, (8001, 8002), f"replaced by {REL}"),
        ]
    )


def test_undo_stops_the_prepare_step_before_the_new_instances_and_leaves_current():
    undo = cmd.undo_prepare_command(L, (8101, 8102))
    assert undo == (
        f"{cmd.kill_prepare_command(L)}; {cmd.drain_in_background_command(L, (8101, 8102), 'switch undone')}"
    )
    assert "current" not in undo and "live_ports" not in undo and "slots" not in undo
    kill = cmd.kill_prepare_command(L)
    assert kill.startswith("pid=$(cat /srv/cnb/state/prepare.pid 2>/dev/null);")
    assert 'grep -qF /srv/cnb "/proc/$pid/cmdline"' in kill  # never a reused pid of another program
    assert kill.endswith("rm -f /srv/cnb/state/prepare.pid; true")


def test_provision_links_only_missing_slots_to_what_current_runs():
    assert cmd.link_missing_slots_command(L, (8001, 9001)) == (
        "if rel=$(readlink /srv/cnb/current); then for slot in /srv/cnb/slots/app-8001 /srv/cnb/slots/app-9001; do"
        ' [ -L "$slot" ] || ln -sfn "$rel" "$slot" || exit 1; done; fi; true'
    )


FLIP_BEGIN = 'echo "@phase flip $(date +%s.%N)" && before=$(pgrep -P "$(cat /srv/cnb/nginx/nginx.pid 2>/dev/null || echo 0)" || true)'
NGINX_VERIFY = "http://10.0.0.5:8080/health/ready"


def record(ports) -> str:
    return cmd.write_file_command("/srv/cnb/state/live_ports", " ".join(map(str, ports)) + "\n")


def test_nginx_is_reloaded_only_when_its_upstream_changed_or_it_is_not_running(host):
    upstream = cmd.nginx_upstream_conf(host, (8101, 8102))
    pid = "/srv/cnb/nginx/nginx.pid"
    assert cmd.nginx_apply_command(L, host, (8101, 8102)) == (
        f"if printf '%s' {cmd.q(upstream)} | cmp -s - /srv/cnb/nginx/upstream.conf"
        f' && [ -s {pid} ] && kill -0 "$(cat {pid})" 2>/dev/null; then {NGINX} -q -t;'
        f" else {cmd.write_file_command('/srv/cnb/nginx/upstream.conf', upstream)} && {RELOAD}"
        f" && {cmd.nginx_new_workers_command(L)}; fi"
    )


def test_flip_over_unix_sockets_repoints_the_slots_verifies_through_them_and_else_goes_back(host):
    def route(ports):
        return [cmd.point_slots_command(host, ports), cmd.nginx_apply_command(L, host, ports)]

    slots = [f"http+unix://%2Fsrv%2Fcnb%2Frun%2Fslot-{i}.sock/health/ready" for i in range(2)]
    verify = cmd.readiness_poll_command([*slots, NGINX_VERIFY], 10, 0.1)
    flip = " && ".join([*route((8101, 8102)), verify, record((8101, 8102)), 'echo "@phase flipped $(date +%s.%N)"'])
    assert cmd.flip_command(L, host, (8101, 8102), (8001, 8002)) == (
        f"{FLIP_BEGIN} && {{ {{ {flip}; }} || {{ echo 'nginx flip failed: back on the old instances';"
        f" {'; '.join([*route((8001, 8002)), record((8001, 8002))])}; false; }}; }}"
    )
    assert cmd.unflip_command(L, host, (8001, 8002)) == " && ".join([*route((8001, 8002)), record((8001, 8002))])
    assert "-s reload" not in cmd.flip_command(L, host, (8101, 8102), (8001, 8002)).split(" else ")[0]


def test_flip_over_tcp_rewrites_the_upstream_and_reloads(tcp_host):
    def route(ports):
        return [cmd.nginx_apply_command(L, tcp_host, ports)]

    verify = cmd.readiness_poll_command([NGINX_VERIFY], 10, 0.1)
    flip = " && ".join([*route((8101, 8102)), verify, record((8101, 8102)), 'echo "@phase flipped $(date +%s.%N)"'])
    assert cmd.flip_command(L, tcp_host, (8101, 8102), (8001, 8002)) == (
        f"{FLIP_BEGIN} && {{ {{ {flip}; }} || {{ echo 'nginx flip failed: back on the old instances';"
        f" {'; '.join([*route((8001, 8002)), record((8001, 8002))])}; false; }}; }}"
    )
    assert "server 127.0.0.1:8101 " in cmd.flip_command(L, tcp_host, (8101, 8102), (8001, 8002))


def test_nginx_new_workers_waits_for_a_worker_started_after_the_reload():
    assert cmd.nginx_new_workers_command(L) == (
        '( deadline=$(( $(date +%s) + 5 )); until pgrep -P "$(cat /srv/cnb/nginx/nginx.pid 2>/dev/null || echo 0)"'
        ' | grep -qvxF -e "${before:-none}"; do if [ "$(date +%s)" -ge "$deadline" ]; then'
        " echo 'nginx did not start workers with the new configuration within 5s'; exit 1; fi; sleep 0.05; done )"
    )


def test_failed_ports_are_the_ones_the_gate_named(host):
    output = f"app-8101: started\n{ready_url(8102)} answered HTTP 503 after 30s:\n{{}}"
    assert cmd.failed_ports(output, host, (8101, 8102)) == [8102]
    assert cmd.failed_ports("app-8101: ERROR (spawn error)", host, (8101, 8102)) == [8101, 8102]


def test_readiness_poll_runs_one_poller_on_the_host_for_every_url():
    assert cmd.readiness_poll_command(
        ["http://h:1/r", "http://h:2/r"], 30, 1.0, "python3.11", "/s.sock", ["app-1", "app-2"]
    ) == (f"python3.11 -I -S -c {cmd.q(cmd.READINESS_POLLER)} 30 1 5 0.1 /s.sock http://h:1/r app-1 http://h:2/r app-2")
    assert cmd.health_poll_command("http://h:1/r", 10, 0.5) == (
        f"python3 -I -S -c {cmd.q(cmd.READINESS_POLLER)} 10 0.5 5 0.1 '' http://h:1/r ''"
    )


def test_ops_cli_runs_from_the_release_with_the_shared_env_file():
    prefix = "cd /srv/cnb/releases/R && ENV_FILE=/srv/cnb/shared/.env ./.venv/bin/python -m deploy.ops.cli"
    assert cmd.migrate_command(L, "R") == f"{prefix} migrate"
    assert cmd.migrate_to_command(L, "R", 1) == f"{prefix} migrate --to 1"
    assert cmd.migrate_status_command(L, "R") == f"{prefix} migrate --status"


def test_logs_tail_and_follow():
    assert cmd.tail_logs_command(L, (8001, 8002), 50, False) == (
        "tail -n 50 /srv/cnb/shared/logs/app-8001.log /srv/cnb/shared/logs/app-8002.log 2>/dev/null; true"
    )
    assert cmd.tail_logs_command(L, (8001,), 5, True) == "tail -n 5 -F /srv/cnb/shared/logs/app-8001.log"
    assert cmd.tail_logs_command(L, (8101,), 5, False, with_output=True) == (
        "tail -n 5 /srv/cnb/shared/logs/app-8101.log /srv/cnb/shared/logs/supervisor/app-8101.out 2>/dev/null; true"
    )


def test_database_ahead_of_the_release():
    assert cmd.database_ahead_of({"db_head": "2_x.py", "code_head": "1_y.py", "code_head_number": 1})
    assert not cmd.database_ahead_of({"db_head": "1_y.py", "code_head": "1_y.py", "code_head_number": 1})
    assert not cmd.database_ahead_of({"db_head": None, "code_head": "1_y.py", "code_head_number": 1})
    assert cmd.database_ahead_of({"db_head": "3_z.py", "code_head": "2_y.py"})
    assert cmd.migration_number("12_2026_x.py") == 12 and cmd.migration_number(None) is None


def test_crontab_block_replaces_only_its_own_marked_block():
    assert cmd.crontab_install_command("clicknback /srv/cnb", "A\n") == (
        "command -v crontab >/dev/null || { echo 'crontab not found: apt-get install cron' >&2; exit 127; };"
        ' exec 9>>"$HOME/.clicknback-crontab.lock" && flock 9 && { crontab -l 2>/dev/null'
        " | awk -v begin='# BEGIN clicknback /srv/cnb' -v end='# END clicknback /srv/cnb'"
        " '$0==begin{skip=1;next} $0==end{skip=0;next} !skip'; printf '%s' 'A\n'; } | crontab -"
    )


def test_crontab_entries(host):
    block = cmd.crontab_block(L, host)
    ops = (
        "cd /srv/cnb/current && ENV_FILE=/srv/cnb/shared/.env ./.venv/bin/python -m deploy.ops.stamp "
        "/srv/cnb/shared/logs/cron.log ./.venv/bin/python -m deploy.ops.cli"
    )
    log = ">> /srv/cnb/shared/logs/cron.log 2>&1"
    lines = block.splitlines()
    assert lines[0] == "# BEGIN clicknback /srv/cnb" and lines[-1] == "# END clicknback /srv/cnb"
    # Scheduled backups are recorded as such (backup --reason), not as manual ones.
    assert (
        f'*/15 * * * * [ "$(date -u +\\%u\\%H\\%M)" = 70100 ] && {ops} backup --reason scheduled {log}'
        f" && {ops} prune-backups {log}"
    ) in lines
    assert f'*/15 * * * * [ "$(date -u +\\%H\\%M)" = 0030 ] && {ops} archive-logs {log}' in lines
    # The first Sunday: a Sunday whose day of the month is 1-7.
    assert (
        f'*/15 * * * * [ "$(date -u +\\%u\\%H\\%M)" = 70200 ] && [ "$(date -u +\\%d)" -le 7 ]'
        f" && {ops} maintenance {log}"
    ) in lines
    assert lines[3] == f"@reboot {cmd.start_services_command(L)}"


def test_the_other_hosts_run_the_window_for_their_own_steps_only(host):
    block = cmd.crontab_block(L, host, database_jobs=False)
    assert " archive-logs " in block and "@reboot" in block
    assert " backup " not in block and " prune-backups " not in block
    maintenance = [line for line in block.splitlines() if " maintenance" in line]
    assert len(maintenance) == 1 and maintenance[0].endswith(
        "-m deploy.ops.cli maintenance --no-shared-steps >> /srv/cnb/shared/logs/cron.log 2>&1"
    )
    assert block.splitlines()[-1] == "# END clicknback /srv/cnb"


@pytest.mark.parametrize(
    "schedule,guard", [("daily", '[ "$(date -u +\\%H\\%M)" = 0100 ]'), ("hourly", '[ "$(date -u +\\%M)" = 00 ]')]
)
def test_backup_schedule_is_configurable(host, schedule, guard):
    from dataclasses import replace

    block = cmd.crontab_block(L, replace(host, backup_schedule=schedule))
    assert any(
        line.startswith(f"*/15 * * * * {guard} && cd /srv/cnb/current") and " backup " in line
        for line in block.splitlines()
    )


def test_supervisor_program_runs_one_instance_from_its_slot(host, tcp_host):
    conf = cmd.supervisor_program_conf(L, host, 8001)
    assert "[program:app-8001]" in conf
    assert "command=/srv/cnb/slots/app-8001/.venv/bin/python -m server --unix /srv/cnb/run/app-8001.sock\n" in conf
    assert (
        "command=/srv/cnb/slots/app-8001/.venv/bin/python -m server --host 127.0.0.1 --port 8001\n"
        in cmd.supervisor_program_conf(L, tcp_host, 8001)
    )
    assert "directory=/srv/cnb/slots/app-8001\n" in conf
    assert "/current" not in "".join(line for line in conf.splitlines() if not line.startswith(";"))
    assert 'ENV_FILE="/srv/cnb/shared/.env",LOG_FILE="/srv/cnb/shared/logs/app-8001.log"' in conf
    assert 'SANIC_REAL_IP_HEADER="x-real-ip"' in conf  # the client's address, as nginx saw it
    assert "autorestart=true" in conf and "stopsignal=TERM" in conf
    assert "autostart=false" in conf  # state/live_ports decides which port of the slot runs


def test_nginx_site_listens_on_the_host_and_includes_the_upstream(host):
    conf = cmd.nginx_conf(L, host)
    assert "listen 10.0.0.5:8080;" in conf
    assert "include /srv/cnb/nginx/upstream.conf;" in conf
    assert "pid /srv/cnb/nginx/nginx.pid;" in conf
    assert "proxy_next_upstream error timeout http_502 http_503;" in conf


def test_render_refuses_missing_or_unused_values():
    with pytest.raises(KeyError, match="missing"):
        cmd.render("supervisord.conf.tmpl")
    with pytest.raises(KeyError, match="unused"):
        cmd.render("supervisord.conf.tmpl", deploy_root="/x", extra=1)


def test_system_setup_is_root_only_and_creates_a_non_superuser_role(host):
    commands = cmd.system_setup_commands(host)
    role = next(c for c in commands if "createuser" in c)
    # CREATEDB: verify-backup and restore --target create their scratch database as this role; an
    # existing role (a host provisioned before) gets it through ALTER ROLE.
    assert "createuser --no-superuser --createdb --no-createrole clicknback" in role
    assert role.endswith(" && su postgres -c \"psql -qc 'ALTER ROLE clicknback CREATEDB'\"")
    assert any("useradd --create-home --shell /bin/bash clicknback" in c for c in commands)
    assert any(c.startswith("apt-get install") and c.endswith(" ufw") for c in commands)
    assert cmd.sysctl_command() in commands


def test_system_setup_opens_the_inventorys_ssh_and_nginx_ports_before_enabling_the_firewall(host):
    from dataclasses import replace

    commands = cmd.system_setup_commands(replace(host, ssh_port=2222, nginx_port=8080))
    assert commands[-1] == "ufw allow 2222/tcp && ufw allow 8080/tcp && ufw --force enable"
    assert not any("OpenSSH" in c or "443" in c for c in commands)


def test_curl_reaches_an_instance_socket_by_its_path():
    assert cmd.curl_target("http+unix://%2Fsrv%2Fcnb%2Frun%2Fapp-8001.sock/health/ready") == (
        "--unix-socket /srv/cnb/run/app-8001.sock http://localhost/health/ready"
    )
    assert cmd.curl_target("http://127.0.0.1:8001/health/live") == "http://127.0.0.1:8001/health/live"
