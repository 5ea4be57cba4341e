"""Provisioning: the deploy root's layout, secrets file, supervisor, nginx and crontab on every
host (idempotent), and the one-time root setup."""

from __future__ import annotations

from deploy import commands as cmd
from deploy.session import Session, host_live_ports, layout, read_state
from deploy.ssh import Remote


def provision_host(remote: Remote, env_file: bytes | None, database_jobs: bool = True) -> None:
    """Idempotent: layout, secrets, supervisor programs, nginx site, crontab block (with the
    database jobs only where `database_jobs`: one host per environment)."""
    host, lay = remote.host, layout(remote)
    remote.run(cmd.layout_command(lay))
    remote.run(cmd.link_missing_slots_command(lay, host.all_ports))
    if env_file is not None:
        uploaded = f"{lay.shared}/.env.upload"
        remote.put_bytes(env_file, uploaded)
        remote.run(cmd.install_env_file_command(lay, uploaded))
        done = "would install" if remote.dry_run else "installed"
        remote.say(f"{done} {lay.env_file} (mode 0600, {len(env_file)} bytes; contents not shown)")
    state = read_state(remote)
    if env_file is None and not state.env_file_exists:
        remote.say(f"WARNING: {lay.env_file} is missing; pass --env-file before deploying")
    files = {
        lay.supervisor_conf: cmd.supervisord_conf(lay),
        lay.nginx_conf: cmd.nginx_conf(lay, host),
        lay.nginx_upstream: cmd.nginx_upstream_conf(host, host_live_ports(remote, state)),
    }
    for port in host.all_ports:
        files[lay.program_conf(port)] = cmd.supervisor_program_conf(lay, host, port)
    remote.run(cmd.remove_stale_programs_command(lay, host.all_ports))
    for path, content in files.items():
        remote.run(cmd.write_file_command(path, content), show=f"write {path}:\n{content}")
    remote.run(cmd.supervisor_ensure_running_command(lay))
    remote.run(cmd.start_live_instances_command(lay))
    remote.run(cmd.nginx_reload_command(lay))
    block = cmd.crontab_block(lay, host, database_jobs)
    remote.run(cmd.crontab_install_command(cmd.crontab_marker(lay), block), show=f"install crontab block:\n{block}")
    remote.say("would be provisioned" if remote.dry_run else "provisioned")


def provision(session: Session, data: bytes | None) -> None:
    """Provision every host; `data` is the env file's content (read by the caller before any SSH).

    Every host is reached (and its deploy root checked) before the first change: a half-provisioned
    environment, or secrets rotated on some hosts only, would differ from host to host.
    """
    session.connect(lambda remote: remote.query(cmd.writable_root_command(layout(remote))))
    first = session.environment.hosts[0].name  # runs the backup and the maintenance window
    session.parallel(lambda remote: provision_host(remote, data, database_jobs=remote.host.name == first))


def provision_system(admin: Session, database: str) -> None:
    """Root-only first-time setup, over SSH as the admin (root, or a sudoer: through `sudo -n`).

    The deploy user may not exist yet on a fresh VPS, so this part logs in as the admin instead;
    every admin login is opened before the first command runs anywhere (a dry run only prints).
    """
    if not admin.dry_run:
        admin.connect()

    def run(remote: Remote) -> None:
        user = remote.host.ssh_user
        for command in cmd.system_setup_commands(remote.host, database):
            wrapped = command if user == "root" else f"sudo -n sh -c {cmd.q(command)}"
            remote.run(wrapped, show=f"(as {user}) {command}")

    admin.parallel(run)


def unprovision_host(remote: Remote) -> None:
    """Stop this deploy root's services and drop its crontab block (sandbox teardown)."""
    lay = layout(remote)
    remote.run(cmd.stop_services_command(lay), check=False)
    remote.run(cmd.crontab_install_command(cmd.crontab_marker(lay), ""), check=False)
