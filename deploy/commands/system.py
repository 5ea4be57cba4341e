"""The one-time root setup of a host: packages, deploy user, PostgreSQL memory and role, firewall, sysctl."""

from __future__ import annotations

from deploy.commands.layout import q
from deploy.commands.postgres_memory import memory_conf_command
from deploy.inventory import Host

SYSCTL_FILE = "/etc/sysctl.d/60-clicknback.conf"
AUTOGROUP_KNOB = "/proc/sys/kernel/sched_autogroup_enabled"


def sysctl_command() -> str:
    """The host's kernel settings, in a file sysctl applies at every boot.

    - ip_unprivileged_port_start=80: the unprivileged nginx listens on port 80.
    - sched_autogroup_enabled=0: autogroup is a desktop feature that splits the CPU fairly between
      sessions. PostgreSQL (its own session under systemd) and the app (supervisord's) then get a
      core each when both are busy, however the work is divided, and a backend that waits for its
      group's turn holds its request, and the busiest routes' p99 rises sharply
      (docs/benchmarks.md).
      Written only where the kernel has the knob, since sysctl fails on an unknown key.
    """
    return (
        f"{{ echo 'net.ipv4.ip_unprivileged_port_start=80';"
        f" [ ! -e {AUTOGROUP_KNOB} ] || echo 'kernel.sched_autogroup_enabled=0'; }}"
        f" > {SYSCTL_FILE} && sysctl --system >/dev/null"
    )


def system_setup_commands(host: Host, database: str = "clicknback", shared_buffers: str = "") -> list[str]:
    """What a fresh Debian/Ubuntu VPS needs once, as root. `provision --system` runs these, again
    on an existing host too: every command is idempotent.

    curl (with --unix-socket) drives supervisord and python3 polls readiness; procps gives the
    switch `pgrep`, to see nginx's new workers after a reload. `shared_buffers` is the inventory's
    override of PostgreSQL's (empty: a quarter of the host's RAM).
    """
    user = q(host.ssh_user)
    role_exists = f"psql -tAc \\\"SELECT 1 FROM pg_roles WHERE rolname='{database}'\\\" | grep -q 1"
    return [
        "apt-get update",
        "apt-get install -y --no-install-recommends python3 python3-venv curl git nginx-light"
        " supervisor cron postgresql zstd procps ufw",
        # The per-deploy-root nginx/supervisord of the deploy user replace the system ones.
        "systemctl disable --now nginx supervisor || true",
        f"id -u {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}",
        # The deploy user accepts the keys the admin logs in with. Under `sudo -n sh -c` a `~` is
        # root's home, so the admin is $SUDO_USER (root itself when it logs in as root).
        f'admin_home=$(getent passwd "${{SUDO_USER:-$(id -un)}}" | cut -d: -f6)'
        f" && deploy_home=$(getent passwd {user} | cut -d: -f6)"
        f' && install -d -m 700 -o {user} -g {user} "$deploy_home/.ssh"'
        f' && {{ [ "$admin_home" = "$deploy_home" ] || install -m 600 -o {user} -g {user}'
        f' "$admin_home/.ssh/authorized_keys" "$deploy_home/.ssh/authorized_keys"; }}',
        f"install -d -o {user} -g {user} -m 755 {q(host.deploy_root)}",
        "timedatectl set-timezone UTC",
        sysctl_command(),
        # Sized from this host's RAM before the database is used (Debian leaves 128 MB of buffers).
        memory_conf_command(shared_buffers),
        # CREATEDB (never superuser or createrole): verify-backup and `restore --target` create
        # their scratch database as the app's role. ALTER grants it on hosts set up before.
        f'su postgres -c "{role_exists}'
        f' || createuser --no-superuser --createdb --no-createrole {database}"'
        f" && su postgres -c \"psql -qc 'ALTER ROLE {database} CREATEDB'\"",
        f'su postgres -c "psql -tAc \\"SELECT 1 FROM pg_database WHERE datname=\'{database}\'\\" | grep -q 1'
        f' || createdb --owner={database} {database}"',
        # Firewall: only the inventory's SSH port and nginx's port from outside (the nginx site
        # serves plain HTTP on nginx_port; there is no TLS listener). App ports stay on loopback.
        # Allowed before enabling, so the SSH session that runs this is never cut off.
        f"ufw allow {int(host.ssh_port)}/tcp && ufw allow {int(host.nginx_port)}/tcp && ufw --force enable",
    ]
