"""Parsers of the /proc files the host's stats read: CPU times, memory, load, per-process CPU and
RSS, and which instance a process is from its command line. Pure: they take the files' text."""

from __future__ import annotations

import re


def parse_cpu_times(proc_stat: str) -> tuple[int, int]:
    """(busy, total) jiffies from the `cpu` line of /proc/stat; busy excludes idle and iowait."""
    for line in proc_stat.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            # guest time is already counted in user/nice: leave fields 8+ out of the total
            total = sum(values[:8])
            return total - idle, total
    raise ValueError("no aggregate cpu line in /proc/stat")


def cpu_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    busy = after[0] - before[0]
    total = after[1] - before[1]
    return round(100.0 * busy / total, 1) if total > 0 else 0.0


def parse_meminfo(text: str) -> dict[str, float]:
    """Total, available and used memory in bytes from /proc/meminfo."""
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[name] = int(parts[0]) * 1024
    total = values["MemTotal"]
    available = values.get("MemAvailable", values.get("MemFree", 0))
    return {
        "total_bytes": total,
        "available_bytes": available,
        "used_bytes": total - available,
        "used_percent": round(100.0 * (total - available) / total, 1) if total else 0.0,
    }


def parse_loadavg(text: str) -> list[float]:
    return [float(v) for v in text.split()[:3]]


def parse_pid_cpu_ticks(stat_text: str) -> int:
    """utime + stime of /proc/<pid>/stat (the command name may hold spaces and parentheses)."""
    after_name = stat_text[stat_text.rindex(")") + 2 :].split()
    # fields after the name start at field 3 (state); utime and stime are fields 14 and 15
    return int(after_name[11]) + int(after_name[12])


def parse_rss_bytes(status_text: str) -> int:
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


_SLOT_SOCKET = re.compile(r"/app-(\d+)\.sock$")


def instance_port(cmdline: list[str]) -> int | None:
    """The slot of an app instance command line: `python -m server --port N` or
    `--unix <deploy_root>/run/app-N.sock` (deploy.inventory.Host.instance_socket)."""
    if "-m" not in cmdline or "server" not in cmdline:
        return None
    index = cmdline.index("-m")
    if index + 1 >= len(cmdline) or cmdline[index + 1] != "server":
        return None
    for option in ("--port", "--unix"):
        if option in cmdline and cmdline.index(option) + 1 < len(cmdline):
            value = cmdline[cmdline.index(option) + 1]
            if option == "--port" and value.isdigit():
                return int(value)
            slot = _SLOT_SOCKET.search(value) if option == "--unix" else None
            if slot:
                return int(slot.group(1))
    return None
