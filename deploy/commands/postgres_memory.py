"""PostgreSQL's memory sized from the host's RAM, as `provision --system` writes it and the bench runs it.

Debian's PostgreSQL 15 starts with shared_buffers at 128 MB whatever the machine holds; at 10
million purchases every insert then lands on index pages that have fallen out of that cache
(ADR 0036). The rules are the usual tuning guides', with floors and caps for 1 GB to 64 GB hosts.
"""

from __future__ import annotations

import inspect

from deploy.commands.layout import q

MEMORY_CONF = "/etc/postgresql/15/main/conf.d/clicknback-memory.conf"
RESTART = "systemctl restart postgresql"


def memory_settings(ram_kb: int, shared_buffers_kb: int = 0) -> dict:
    """PostgreSQL's memory settings in kB, whole MB each (shown as set), for a host with `ram_kb` of RAM;
    `shared_buffers_kb` is the inventory's override (0: none).

    Self-contained (no imports, Python 3.9): the host runs this very source under its python3,
    so the rules exist once.
    """
    mb = 1024

    def bounded(value: int, low: int, high: int) -> int:
        return max(low, min(high, value)) // mb * mb

    # A quarter of RAM: the rest is the kernel's page cache, which PostgreSQL also reads through.
    # Never below Debian's 128 MB; 16 GB is where the guides stop seeing gains.
    shared_buffers = shared_buffers_kb or bounded(ram_kb // 4, 128 * mb, 16384 * mb)
    return {
        "shared_buffers": shared_buffers,
        # Only a planner hint (nothing is allocated): what shared_buffers and the page cache hold.
        "effective_cache_size": max(shared_buffers, ram_kb * 3 // 4 // mb * mb),
        # Per sort or hash node, per connection: RAM/256 keeps 100 connections with a few nodes
        # each inside RAM; 4 MB is PostgreSQL's default, 64 MB more than the API's queries sort.
        "work_mem": bounded(ram_kb // 256, 4 * mb, 64 * mb),
        # One at a time (vacuum, CREATE INDEX, migrations): RAM/16, at least PostgreSQL's 64 MB,
        # capped at 2 GB since autovacuum's workers each take it too.
        "maintenance_work_mem": bounded(ram_kb // 16, 64 * mb, 2048 * mb),
    }


def memory_conf(ram_kb: int, shared_buffers_kb: int = 0) -> str:
    """The conf.d file's text for a host with `ram_kb` of RAM (same input, same bytes)."""
    lines = ["# Written by `provision --system` from this host's RAM; edits are replaced (ADR 0036)."]
    lines += [f"{name} = '{value // 1024}MB'" for name, value in memory_settings(ram_kb, shared_buffers_kb).items()]
    return "\n".join(lines) + "\n"


def server_options(ram_kb: int) -> str:
    """The same settings as `postgres -c` options, for a cluster started outside Debian's."""
    return " ".join(f"-c {name}={value // 1024}MB" for name, value in memory_settings(ram_kb).items())


def host_ram_kb(meminfo: str = "/proc/meminfo") -> int:
    """This machine's RAM as the kernel reports it (MemTotal, in kB); plain open() since the host runs it too."""
    with open(meminfo) as lines:
        for line in lines:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    raise ValueError(f"{meminfo}: no MemTotal line")


def size_kb(size: str) -> int:
    """The inventory's "512MB" or "2GB" in kB; empty is 0 (no override)."""
    if not size:
        return 0
    return int(size[:-2]) * (1024 if size.endswith("MB") else 1024 * 1024)


def memory_conf_command(
    shared_buffers: str = "", conf: str = MEMORY_CONF, restart: str = RESTART, meminfo: str = "/proc/meminfo"
) -> str:
    """Write the memory file from the host's own RAM; restart PostgreSQL only when the file changed.

    The host's python3 runs this module's functions' own source, so the rules exist once. An
    unchanged file restarts nothing: re-provisioning a live host does not drop its connections.
    """
    script = "\n".join(
        [
            inspect.getsource(memory_settings),
            inspect.getsource(memory_conf),
            inspect.getsource(host_ram_kb),
            f"print(memory_conf(host_ram_kb({meminfo!r}), {size_kb(shared_buffers)}), end='')",
        ]
    )
    new = q(conf + ".new")
    return (
        f"python3 -c {q(script)} > {new}"
        f" && if cmp -s {new} {q(conf)}; then rm -f {new};"
        f" else mv {new} {q(conf)} && {restart}; fi"
    )
