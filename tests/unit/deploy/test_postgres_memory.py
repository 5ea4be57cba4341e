"""PostgreSQL's memory from the host's RAM (ADR 0036): the rules at several sizes and the command's text."""

from __future__ import annotations

import pytest

from deploy import commands as cmd
from deploy.commands.postgres_memory import (
    MEMORY_CONF,
    host_ram_kb,
    memory_conf,
    memory_conf_command,
    memory_settings,
    server_options,
    size_kb,
)
from deploy.inventory import InventoryError, parse_inventory
from tests.unit.deploy.test_commands import host  # noqa: F401 (fixture)

MB = 1024
GB = 1024 * MB


@pytest.mark.parametrize(
    ("ram_kb", "expected"),
    [
        # A 512 MB box still gets Debian's 128 MB and PostgreSQL's own floors.
        (
            512 * MB,
            {
                "shared_buffers": 128 * MB,
                "effective_cache_size": 384 * MB,
                "work_mem": 4 * MB,
                "maintenance_work_mem": 64 * MB,
            },
        ),
        # A 1 GB VPS as the kernel reports it (a little under 1 GB).
        (
            1_000_000,
            {
                "shared_buffers": 244 * MB,
                "effective_cache_size": 732 * MB,
                "work_mem": 4 * MB,
                "maintenance_work_mem": 64 * MB,
            },
        ),
        (
            4 * GB,
            {
                "shared_buffers": 1 * GB,
                "effective_cache_size": 3 * GB,
                "work_mem": 16 * MB,
                "maintenance_work_mem": 256 * MB,
            },
        ),
        (
            64 * GB,
            {
                "shared_buffers": 16 * GB,
                "effective_cache_size": 48 * GB,
                "work_mem": 64 * MB,
                "maintenance_work_mem": 2 * GB,
            },
        ),
        # Past the caps only the planner's hint keeps growing.
        (
            256 * GB,
            {
                "shared_buffers": 16 * GB,
                "effective_cache_size": 192 * GB,
                "work_mem": 64 * MB,
                "maintenance_work_mem": 2 * GB,
            },
        ),
    ],
)
def test_memory_settings_follow_the_guides_within_floors_and_caps(ram_kb, expected):
    assert memory_settings(ram_kb) == expected


def test_more_ram_never_means_less_memory_for_any_setting():
    sizes = [256 * MB * step for step in range(1, 1025)]
    for smaller, larger in zip(sizes, sizes[1:]):
        low, high = memory_settings(smaller), memory_settings(larger)
        assert all(high[name] >= low[name] for name in low), (smaller, larger)


def test_the_file_and_the_options_carry_the_same_values():
    ram = 24 * GB
    assert memory_conf(ram) == (
        "# Written by `provision --system` from this host's RAM; edits are replaced (ADR 0036).\n"
        "shared_buffers = '6144MB'\n"
        "effective_cache_size = '18432MB'\n"
        "work_mem = '64MB'\n"
        "maintenance_work_mem = '1536MB'\n"
    )
    assert server_options(ram) == (
        "-c shared_buffers=6144MB -c effective_cache_size=18432MB -c work_mem=64MB -c maintenance_work_mem=1536MB"
    )


def test_host_ram_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemFree:         1000 kB\nMemTotal:       24683772 kB\n")
    assert host_ram_kb(str(meminfo)) == 24683772
    meminfo.write_text("MemFree: 1 kB\n")
    with pytest.raises(ValueError, match="MemTotal"):
        host_ram_kb(str(meminfo))


def test_the_command_writes_debians_conf_d_and_restarts_only_on_a_change():
    command = memory_conf_command()
    assert command.startswith("python3 -c ")
    assert f"> {MEMORY_CONF}.new && if cmp -s {MEMORY_CONF}.new {MEMORY_CONF}; then rm -f {MEMORY_CONF}.new;" in command
    assert command.endswith(f"else mv {MEMORY_CONF}.new {MEMORY_CONF} && systemctl restart postgresql; fi")
    # The RAM is read on the host, not where provision runs.
    assert "/proc/meminfo" in command and str(host_ram_kb()) not in command


def test_provision_system_sizes_the_memory_before_creating_the_role(host):  # noqa: F811
    commands = cmd.system_setup_commands(host)
    sizing = commands.index(memory_conf_command())
    installing = next(i for i, c in enumerate(commands) if "apt-get install" in c and " postgresql " in c)
    creating = next(i for i, c in enumerate(commands) if "createuser" in c)
    assert installing < sizing < creating


def test_the_inventorys_shared_buffers_overrides_the_quarter_and_nothing_else():
    assert memory_settings(4 * GB, size_kb("512MB")) == memory_settings(4 * GB) | {"shared_buffers": 512 * MB}
    # The planner's hint never falls below what the buffers hold.
    assert memory_settings(4 * GB, size_kb("8GB"))["effective_cache_size"] == 8 * GB
    assert size_kb("") == 0 and size_kb("2GB") == 2 * GB


INVENTORY = '[environments.prod]\n[[environments.prod.hosts]]\naddress = "10.0.0.5"\n[environments.prod.database]\n'


def test_the_inventory_takes_shared_buffers_in_mb_or_gb():
    assert parse_inventory(INVENTORY).environment("prod").database.shared_buffers == ""
    chosen = parse_inventory(INVENTORY + 'shared_buffers = "2GB"\n').environment("prod").database
    assert chosen.shared_buffers == "2GB"
    for wrong in ('"25%"', '"2 GB"', '"0MB"', '"2gb"', '"2048"', "2048", '""'):
        with pytest.raises(InventoryError, match="shared_buffers"):
            parse_inventory(INVENTORY + f"shared_buffers = {wrong}\n")


def test_provision_system_passes_the_override_to_the_host(host):  # noqa: F811
    command = next(c for c in cmd.system_setup_commands(host, "clicknback", "2GB") if MEMORY_CONF in c)
    assert command == memory_conf_command("2GB")
    assert f"meminfo'\"'\"'), {2 * GB})" in command
