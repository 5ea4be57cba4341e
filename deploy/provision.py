"""Provisioning: the deploy root's layout, secrets file, supervisor, nginx and crontab on every
host (idempotent), and the one-time root setup."""

from __future__ import annotations

from deploy import commands as cmd
from deploy import dryrun
from deploy.primary import database_host
from deploy.session import Session, host_live_ports, layout, read_state
from deploy.ssh import Remote


def provision_host(remote: Remote, env_file: bytes | None, database_jobs: bool = True) -> None:
    """Idempotent: layout, secrets, supervisor programs, nginx site, crontab block (with the
    database jobs only where `database_jobs`: one host per environment)."""
    host, lay = remote.host, layout(remote)
    remote.run(cmd.layout_command(lay), what="create the deploy root's folders")
    remote.run(
        cmd.link_missing_slots_command(lay, host.all_ports),
        what="link each instance slot that has no release yet to the one `current` names",
    )
    if env_file is not None:
        uploaded = f"{lay.shared}/.env.upload"
        remote.put_bytes(env_file, uploaded)
        remote.run(cmd.install_env_file_command(lay, uploaded), what="put the secrets file in place, mode 0600")
        done = "would install" if remote.dry_run else "installed"
        remote.say(f"{done} {lay.env_file} (mode 0600, {len(env_file)} bytes; contents not shown)")
    state = read_state(remote)
    if env_file is None and not state.env_file_exists:
        remote.say(f"WARNING: {lay.env_file} is missing; pass --env-file before deploying")
    live = host_live_ports(remote, state)
    files = {  # path: (content, what it is, for the dry run's line)
        lay.supervisor_conf: (cmd.supervisord_conf(lay), "supervisord's config"),
        lay.nginx_conf: (cmd.nginx_conf(lay, host), "nginx's config"),
        lay.nginx_upstream: (cmd.nginx_upstream_conf(host, live), "nginx's upstream"),
    }
    for port in host.all_ports:
        files[lay.program_conf(port)] = (cmd.supervisor_program_conf(lay, host, port), "a supervisor program")
    remote.run(
        cmd.remove_stale_programs_command(lay, host.all_ports),
        what="remove supervisor programs of instance slots the inventory no longer has",
    )
    for path, (content, name) in files.items():
        remote.run(cmd.write_file_command(path, content), what=f"write {name} ({content.count(chr(10))} lines)")
    remote.run(cmd.supervisor_ensure_running_command(lay), what="start supervisord if needed and load its programs")
    remote.run(cmd.start_live_instances_command(lay), what="start the live instances, if a release is deployed")
    if host.instance_listen == "unix":  # the upstream names the slots: each points at its live instance
        remote.run(cmd.point_slots_command(host, live), what="point each slot's socket at its live instance")
    remote.run(cmd.nginx_reload_command(lay), what="check nginx's config and reload nginx (start it if down)")
    block = cmd.crontab_block(lay, host, database_jobs)
    marker = cmd.crontab_marker(lay)
    remote.run(
        cmd.crontab_install_command(marker, block),
        what=f"install the crontab block ({sum(1 for line in block.splitlines() if not line.startswith('#'))} jobs)",
        key=f"crontab -l | (replace the lines from '# BEGIN {marker}' to '# END {marker}') | crontab -",
    )
    remote.say("would be provisioned" if remote.dry_run else "provisioned")


def provision(session: Session, data: bytes | None) -> None:
    """Provision every host; `data` is the env file's content (read by the caller before any SSH).

    Every host is reached (and its deploy root checked) before the first change: a half-provisioned
    environment, or secrets rotated on some hosts only, would differ from host to host.
    """
    session.connect(lambda remote: remote.query(cmd.writable_root_command(layout(remote))))
    first = database_host(session).host.name  # runs the backup and the maintenance window
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
        shared_buffers = admin.environment.database.shared_buffers
        for command in cmd.system_setup_commands(remote.host, database, shared_buffers):
            wrapped = command if user == "root" else f"sudo -n sh -c {cmd.q(command)}"
            remote.run(wrapped, key=f"(as {user}) {dryrun.fold(command)}")

    admin.parallel(run)


def unprovision_host(remote: Remote) -> None:
    """Stop this deploy root's services and drop its crontab block (sandbox teardown)."""
    lay = layout(remote)
    remote.run(cmd.stop_services_command(lay), check=False, what="stop nginx and supervisord")
    remote.run(cmd.crontab_install_command(cmd.crontab_marker(lay), ""), check=False, what="drop the crontab block")
