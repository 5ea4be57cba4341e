"""The README's first command, `make serve` (`invoke serve`), on a machine with no PostgreSQL server:
it serves the API and the demo seed on an embedded PostgreSQL, and Ctrl-C stops both."""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from devtools.local_postgres import bundled_pg_bindir, free_port
from tests.support.server_process import PROJECT_ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture
def local_dir():
    """A .local/ of its own inside the project, as `make serve` makes one there (the venv's bundled
    binaries must be reachable from it); never the developer's own."""
    path = PROJECT_ROOT / ".local" / f"test-serve-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_serve_runs_on_the_bundled_postgresql_and_ctrl_c_stops_both(local_dir, tmp_path):
    bundled = bundled_pg_bindir()
    assert bundled is not None and (bundled / "initdb").exists(), "pgserver is in requirements-dev.lock"
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "OAUTH_HASH_KEY")}
    # PG_BINDIR: the binaries a machine without PostgreSQL falls back to (find_pg_bindir's last choice).
    env.update(PG_BINDIR=str(bundled), CLICKNBACK_LOCAL_DIR=str(local_dir), ENV_FILE="/dev/null")
    output = tmp_path / "serve.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "invoke"), "serve", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=base, timeout=5) as http:
            while True:
                assert process.poll() is None, output.read_text()
                assert time.monotonic() < deadline, output.read_text()
                try:
                    if http.get("/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)  # poll interval; the loop waits on readiness itself
            login = http.post("/api/v1/auth/login", json={"email": "alice@clicknback.com", "password": "Str0ng!Pass"})
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            offers = http.get("/api/v1/offers/active", headers={"Authorization": f"Bearer {token}"})
            assert offers.status_code == 200 and offers.json()["data"], offers.text
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=60) == 0, output.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.read_text()
    assert f"creating embedded PostgreSQL in {local_dir / 'postgres'}" in text
    assert "demo seed loaded" in text and "embedded PostgreSQL stopped" in text
    assert not (local_dir / "postgres" / "data" / "postmaster.pid").exists()  # the cluster is down
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
