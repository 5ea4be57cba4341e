"""What a dry run prints per step: one readable line by default, the exact command with --verbose."""

from __future__ import annotations

import io

from deploy import commands as cmd
from deploy import dryrun
from deploy.ssh import Remote
from tests.unit.deploy.test_commands import REL, L, parsed_host


def dry_remote(verbose: bool) -> tuple[Remote, io.StringIO]:
    out = io.StringIO()
    return Remote(parsed_host(), dry_run=True, out=out, verbose=verbose), out


def test_the_default_line_folds_xmlrpc_bodies_and_the_embedded_poller():
    host = parsed_host()
    prepare = cmd.prepare_switch_command(L, host, REL, (8101,))
    assert "<methodCall>" in prepare and "import http.client" in prepare  # what the fold hides
    line = dryrun.key_command(prepare, limit=10_000)
    assert "\n" not in line and "<methodCall>" not in line and "import " not in line and "@phase" not in line
    assert "supervisor supervisor.startProcess(app-8101)" in line
    assert "python3 -I -S -c <script: The readiness gate's poller> 30 1 5 0.1" in line
    assert "http+unix://%2Fsrv%2Fcnb%2Frun%2Fapp-8101.sock/health/ready" in line
    assert line.startswith(
        "<check the programs run their slots> && ln -sfn /srv/cnb/releases/20261127T010203Z-v1.2.3 "
        "/srv/cnb/slots/app-8101.tmp && mv -T"
    ), line
    assert "prepare.pid" not in line


def test_file_writes_and_config_flags_fold_to_their_names():
    assert (
        dryrun.fold(cmd.write_file_command("/srv/cnb/x.conf", "a 'quoted'\nb\n")) == "write /srv/cnb/x.conf (mode 644)"
    )
    assert dryrun.fold(cmd.supervisor_ensure_running_command(L)) == (
        "{ supervisorctl pid >/dev/null 2>&1 || supervisord; } && supervisorctl reread >/dev/null && supervisorctl update"
    )
    assert dryrun.fold(cmd.nginx_reload_command(L)).startswith("nginx -q -t && if [ -s /srv/cnb/nginx/nginx.pid ]")


def test_a_long_key_is_cut_on_a_word_with_an_ellipsis():
    line = dryrun.key_command("rm -rf -- " + " ".join(f"/srv/cnb/releases/r{i}" for i in range(40)), limit=80)
    assert len(line) <= 82 and line.endswith(" …") and line.startswith("rm -rf -- /srv/cnb/releases/r0 ")


def test_remote_run_in_a_dry_run_prints_one_line_per_step_by_default():
    remote, out = dry_remote(verbose=False)
    result = remote.run(cmd.prepare_switch_command(L, remote.host, REL, (8101,)), what="start it, gated")
    remote.run(cmd.lock_acquire_command(L, '{"token": "secret"}'), what="take the deploy lock", key="set -C; LOCK")
    remote.run(cmd.prune_command(L, [REL]))
    lines = out.getvalue().splitlines()
    assert result.ok and len(lines) == 3, lines
    assert (
        lines[0].startswith("[app1 +")
        and "] would start it, gated: <check the programs run their slots> && ln -sfn /srv/cnb/releases/" in lines[0]
    )
    assert "<methodCall>" not in out.getvalue() and len(lines[0]) < 300
    assert lines[1].endswith("] would take the deploy lock: set -C; LOCK")
    assert lines[2].endswith(f"] would run: rm -rf -- /srv/cnb/releases/{REL}")


def test_verbose_adds_the_exact_command_whole():
    remote, out = dry_remote(verbose=True)
    prepare = cmd.prepare_switch_command(L, remote.host, REL, (8101,))
    remote.run(prepare, what="start it, gated")
    remote.run(cmd.prune_command(L, [REL]))
    text = out.getvalue()
    assert text.split("\n", 1)[0].endswith("] would start it, gated")
    assert f"] would run: {prepare}\n" in text  # byte for byte, bodies and poller included
    assert text.rstrip().endswith(f"] would run: rm -rf -- /srv/cnb/releases/{REL}")
