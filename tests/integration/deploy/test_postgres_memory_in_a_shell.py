"""The memory command run by a real sh and the system python3, against a temporary folder in place of
/etc/postgresql/15/main/conf.d and a counter in place of the restart (ADR 0036)."""

from __future__ import annotations

import subprocess

from deploy.commands.postgres_memory import memory_conf, memory_conf_command

GB = 1024 * 1024


def run(tmp_path, ram_kb: int, shared_buffers: str = "") -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal:       {ram_kb} kB\nMemFree:        1 kB\n")
    command = memory_conf_command(
        shared_buffers,
        conf=str(tmp_path / "conf.d" / "clicknback-memory.conf"),
        restart=f"echo restarted >> {tmp_path / 'restarts'}",
        meminfo=str(meminfo),
    )
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def restarts(tmp_path) -> int:
    log = tmp_path / "restarts"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_the_file_is_written_once_and_rewritten_only_when_the_ram_changes(tmp_path):
    (tmp_path / "conf.d").mkdir()
    conf = tmp_path / "conf.d" / "clicknback-memory.conf"

    run(tmp_path, 4 * GB)
    assert conf.read_text() == memory_conf(4 * GB)
    assert restarts(tmp_path) == 1

    # Provisioning again on the same host: same bytes, no restart, no leftover.
    run(tmp_path, 4 * GB)
    assert restarts(tmp_path) == 1
    assert sorted(p.name for p in conf.parent.iterdir()) == ["clicknback-memory.conf"]

    # The VPS was resized: the file follows and PostgreSQL restarts once to take it.
    run(tmp_path, 8 * GB)
    assert conf.read_text() == memory_conf(8 * GB)
    assert restarts(tmp_path) == 2

    # The inventory sets shared_buffers: written and restarted once, then left alone.
    run(tmp_path, 8 * GB, "1GB")
    assert conf.read_text() == memory_conf(8 * GB, GB) and "shared_buffers = '1024MB'" in conf.read_text()
    run(tmp_path, 8 * GB, "1GB")
    assert restarts(tmp_path) == 3
    run(tmp_path, 8 * GB)
    assert restarts(tmp_path) == 4

    # A hand edit is replaced (the file says so) and restarts to undo it.
    conf.write_text(conf.read_text().replace("shared_buffers", "#shared_buffers"))
    run(tmp_path, 8 * GB)
    assert conf.read_text() == memory_conf(8 * GB)
    assert restarts(tmp_path) == 5


def test_a_failed_read_changes_nothing_and_restarts_nothing(tmp_path):
    (tmp_path / "conf.d").mkdir()
    conf = tmp_path / "conf.d" / "clicknback-memory.conf"
    conf.write_text(memory_conf(4 * GB))
    command = memory_conf_command(
        conf=str(conf), restart=f"echo restarted >> {tmp_path / 'restarts'}", meminfo=str(tmp_path / "missing")
    )
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert conf.read_text() == memory_conf(4 * GB) and restarts(tmp_path) == 0
