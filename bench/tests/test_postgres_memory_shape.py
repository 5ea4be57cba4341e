"""The bench's PostgreSQL has the memory `provision --system` gives a host with this RAM (ADR 0036)."""

from __future__ import annotations

from bench import table
from bench.tests.test_harness import SHAPE
from deploy.commands import postgres_memory


def test_the_header_names_the_shared_buffers_provision_would_set():
    line = table.shape_line({**SHAPE, "ram_kb": 24 * 1024 * 1024})
    assert "commits flushed to disk (as production), shared_buffers 6144 MB (as provision sizes it);" in line


def test_the_bench_cluster_runs_with_those_settings(tmp_path):
    """A real cluster started the way the bench starts it reports provision's values for this RAM."""
    import subprocess

    from devtools.local_postgres import PRODUCTION_DURABILITY, LocalPostgres

    ram = postgres_memory.host_ram_kb()
    cluster = LocalPostgres(tmp_path / "pg")
    try:
        cluster.start(f"{PRODUCTION_DURABILITY} {postgres_memory.server_options(ram)}")
        shown = subprocess.run(
            [
                cluster._bin("psql"),
                cluster.dsn("postgres"),
                "-tAc",
                "SELECT name, setting, unit FROM pg_settings WHERE name IN"
                " ('shared_buffers', 'effective_cache_size', 'work_mem', 'maintenance_work_mem') ORDER BY name",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    finally:
        cluster.stop()
    settings = {}
    for row in shown.split():
        name, setting, unit = row.split("|")
        settings[name] = int(setting) * (8 if unit == "8kB" else 1)
    assert settings == postgres_memory.memory_settings(ram)
