"""Real sshd "VPS hosts" for e2e tests: the same Sandbox that `invoke sandbox up` starts.

`started_sandbox(base)` brings up sshd on 127.0.0.2/127.0.0.3 (deploy user, host keys, known_hosts),
per-host deploy roots and a PostgreSQL cluster. `seed_shared_venv` builds the dependency venv of a
requirements.lock once in a persistent cache (pip from PyPI takes about a minute) and links it into
every host's venvs/<hash>, so deploys in tests reuse it exactly as a redeploy would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy import commands as cmd
from deploy.inventory import load_inventory
from deploy.ssh import Remote
from devtools.local_sshd import chown_tree, make_reachable, ports_free_on_all
from devtools.sandbox import DEFAULT_ADDRESSES, ENVIRONMENT, Sandbox

VENV_CACHE = Path(os.environ.get("CLICKNBACK_TEST_VENV_CACHE", "/var/tmp/clicknback-test-venvs"))


# A release that never gets ready fails its gate after this long, not the default 30 s; the
# instances here are ready in 1-3 s.
GATE_SECONDS = 15


@contextmanager
def started_sandbox(
    addresses: tuple[str, ...] = DEFAULT_ADDRESSES,
    with_s3: bool = False,
    crontab_lines: tuple[str, ...] = (),
    database_pair: bool = False,
) -> Iterator[Sandbox]:
    """A sandbox on free ports (sshd, nginx, app instances and their standby ports), removed afterwards
    with its folder and its crontab blocks; `crontab_lines`: exact lines the tests add to the deploy
    user's crontab, removed too."""
    base = Path(tempfile.mkdtemp(prefix="cnb-e2e-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    nginx_port, *app_ports = ports_free_on_all(addresses, 5)
    sandbox = Sandbox(
        base / "sandbox",
        addresses,
        nginx_port=nginx_port,
        instance_ports=tuple(app_ports[:2]),
        standby_ports=tuple(app_ports[2:]),
        with_s3=with_s3,
        health_timeout=GATE_SECONDS,
        database_pair=database_pair,
    )
    try:
        sandbox.start()
        yield sandbox
    finally:
        try:
            sandbox.destroy(crontab_lines)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def seed_shared_venv(sandbox: Sandbox, lock_file: bytes) -> str:
    """Build (once, cached across sessions) the venv for `lock_file`; link it on every host."""
    lock_hash = hashlib.sha256(lock_file).hexdigest()
    VENV_CACHE.mkdir(parents=True, exist_ok=True)
    make_reachable(VENV_CACHE)
    requirements = VENV_CACHE / f"{lock_hash}.lock"
    requirements.write_bytes(lock_file)
    chown_tree(VENV_CACHE, sandbox.sshd.user)
    environment = load_inventory(str(sandbox.inventory_path)).environment(ENVIRONMENT)
    cached = str(VENV_CACHE / lock_hash)
    first = Remote(environment.hosts[0])
    try:
        first.query(cmd.build_venv_command(cached, str(requirements), environment.hosts[0].python))
    finally:
        first.close()
    for host in environment.hosts:
        venvs = Path(host.deploy_root) / "venvs"
        venvs.mkdir(parents=True, exist_ok=True)
        link = venvs / lock_hash
        if not link.exists():
            link.symlink_to(cached)
        chown_tree(venvs, sandbox.sshd.user)
    return lock_hash
