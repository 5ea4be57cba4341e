"""Real OpenSSH sshd processes on loopback addresses, acting as VPS hosts (sandbox and tests).

Each host is one sshd bound to its own address (127.0.0.2, 127.0.0.3, ...) on an unprivileged
port, with a generated host key. One client key is authorised for the deploy user, and a
known_hosts file records every host key, so the deploy tooling connects with strict host-key
checking exactly as it would to a real VPS. Run as root, the deploy user is a dedicated
unprivileged account (created when missing); otherwise it is the current user.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DEPLOY_USER = "clicknback"
SSHD = "/usr/sbin/sshd"


class LocalSshdError(RuntimeError):
    """sshd could not be set up or did not come up."""


def deploy_user_name(preferred: str = DEFAULT_DEPLOY_USER) -> str:
    """The account the hosts log in as: `preferred` when we can create it (root), else ourselves."""
    return preferred if os.geteuid() == 0 else getpass.getuser()


def ensure_deploy_user(name: str) -> pwd.struct_passwd:
    """Create the unprivileged deploy user if missing (root only), with a usable login shell.

    sshd without PAM refuses accounts whose password field is locked ("!"), so it is set to "*"
    (no password, not locked): the only way in is the authorised key.
    """
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if os.geteuid() != 0:
            raise LocalSshdError(f"user {name!r} does not exist and only root can create it") from None
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
        entry = pwd.getpwnam(name)
    if os.geteuid() == 0:
        subprocess.run(["usermod", "-p", "*", name], check=True)
    return entry


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def ports_free_on_all(addresses: tuple[str, ...], count: int = 1) -> list[int]:
    """`count` ports nobody has bound on any of `addresses`. A port free on the first address may be
    taken on another by a host of another sandbox or test run (each binds its own addresses)."""
    ports: list[int] = []
    for _ in range(100 * count):
        candidate = free_port(addresses[0])
        if candidate not in ports and all(_bindable(a, candidate) for a in addresses[1:]):
            ports.append(candidate)
            if len(ports) == count:
                return ports
    raise LocalSshdError(f"no {count} port(s) free on all of {', '.join(addresses)}")


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, port))
            return True
        except OSError:
            return False


def chown_tree(path: Path, user: str) -> None:
    """Give `path` (recursively) to the deploy user; a no-op when we are that user."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def make_reachable(path: Path) -> None:
    """Let other users traverse every parent of `path` (the deploy user must reach its files)."""
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)


@dataclass(frozen=True)
class SshHost:
    address: str
    port: int
    user: str
    identity_file: Path
    known_hosts: Path


@dataclass
class LocalSshd:
    """sshd hosts under `base_dir`: keys/, hosts/<address>/ (host key, config, pid, log)."""

    base_dir: Path
    addresses: tuple[str, ...] = ("127.0.0.2", "127.0.0.3")
    user: str = ""
    port: int = 0

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()
        self.user = self.user or deploy_user_name()
        remembered = self.base_dir / "sshd-port"
        if not self.port:
            self.port = int(remembered.read_text()) if remembered.exists() else ports_free_on_all(self.addresses)[0]

    @property
    def identity_file(self) -> Path:
        return self.base_dir / "keys" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.base_dir / "keys" / "known_hosts"

    def host_dir(self, address: str) -> Path:
        return self.base_dir / "hosts" / address

    def hosts(self) -> list[SshHost]:
        return [SshHost(a, self.port, self.user, self.identity_file, self.known_hosts) for a in self.addresses]

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> list[SshHost]:
        if not os.path.exists(SSHD):
            raise LocalSshdError(f"{SSHD} not found: apt-get install -y openssh-server")
        ensure_deploy_user(self.user)
        (self.base_dir / "keys").mkdir(parents=True, exist_ok=True)
        (self.base_dir / "sshd-port").write_text(str(self.port))
        if not self.identity_file.exists():
            _keygen(self.identity_file, "clicknback deploy key")
        authorized = self.base_dir / "keys" / "authorized_keys"
        authorized.write_text(self.identity_file.with_suffix(".pub").read_text())
        authorized.chmod(0o644)
        make_reachable(authorized.parent)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        known_lines = []
        for address in self.addresses:
            host_dir = self.host_dir(address)
            host_dir.mkdir(parents=True, exist_ok=True)
            host_key = host_dir / "ssh_host_ed25519_key"
            if not host_key.exists():
                _keygen(host_key, f"clicknback sandbox host {address}")
            key_type, key_data = host_key.with_suffix(".pub").read_text().split()[:2]
            known_lines.append(f"[{address}]:{self.port} {key_type} {key_data}")
            self._start_one(address, host_dir, host_key, authorized)
        self.known_hosts.write_text("\n".join(known_lines) + "\n")
        for address in self.addresses:
            _wait_for_banner(address, self.port)
        return self.hosts()

    def _start_one(self, address: str, host_dir: Path, host_key: Path, authorized: Path) -> None:
        pid_file = host_dir / "sshd.pid"
        if _pid_alive(pid_file):
            return
        config = host_dir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress {address}\nHostKey {host_key}\nPidFile {pid_file}\n"
            f"AuthorizedKeysFile {authorized}\nAllowUsers {self.user}\nPermitRootLogin no\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nX11Forwarding no\nAllowTcpForwarding no\n"
            "Subsystem sftp internal-sftp\nMaxSessions 50\nMaxStartups 50:30:100\nLogLevel INFO\n"
        )
        result = subprocess.run(
            [SSHD, "-f", str(config), "-E", str(host_dir / "sshd.log")], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise LocalSshdError(f"sshd on {address}:{self.port} failed: {result.stderr.strip()}")

    def stop(self) -> None:
        for address in self.addresses:
            pid_file = self.host_dir(address) / "sshd.pid"
            if _pid_alive(pid_file):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            pid_file.unlink(missing_ok=True)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)


# -- crontab cleanup (the deploy user's crontab is shared by every sandbox and test run) -----

BLOCK_BEGIN = "# BEGIN clicknback "
BLOCK_END = "# END clicknback "


def is_under(path: str, folder: str | Path) -> bool:
    """`path` is `folder` or inside it (by path components: /a/bc is not under /a/b)."""
    folder = str(folder).rstrip("/")
    return path == folder or path.startswith(folder + "/")


def strip_crontab(text: str, drop_root: Callable[[str], bool], drop_lines: Iterable[str] = ()) -> str:
    """`text` without the clicknback blocks whose deploy root `drop_root` accepts and without the
    exact lines `drop_lines`; every other line (blocks of other roots, the user's own) is kept."""
    drop_lines = set(drop_lines)
    kept, skipping = [], None
    for line in text.splitlines():
        if skipping is not None:
            if line == BLOCK_END + skipping:
                skipping = None
            continue
        if line.startswith(BLOCK_BEGIN) and drop_root(line[len(BLOCK_BEGIN) :]):
            skipping = line[len(BLOCK_BEGIN) :]
            continue
        if line not in drop_lines:
            kept.append(line)
    return "".join(f"{line}\n" for line in kept)


def remove_crontab_entries(user: str, drop_root: Callable[[str], bool], drop_lines: Iterable[str] = ()) -> bool:
    """Edit `user`'s crontab on this machine (no SSH: works when sshd is already gone) under the
    lock `invoke provision` takes (deploy/commands/cron.py CRONTAB_LOCK), so a run provisioning beside
    us keeps its block. True when something was removed."""
    if shutil.which("crontab") is None:
        return False
    as_other = os.geteuid() == 0 and user != getpass.getuser()
    selector = ["-u", user] if as_other else []
    entry = pwd.getpwnam(user)
    lock_path = Path(entry.pw_dir) / ".clicknback-crontab.lock"
    try:
        lock = open(lock_path, "a")
    except OSError:
        lock = None  # no home to lock in: nobody provisions as this user either
    try:
        if lock is not None:
            if as_other:
                os.chown(lock_path, entry.pw_uid, entry.pw_gid)  # the deploy user opens it next
            fcntl.flock(lock, fcntl.LOCK_EX)
        listed = subprocess.run(["crontab", *selector, "-l"], capture_output=True, text=True)
        if listed.returncode != 0:  # no crontab (or no cron): nothing to remove
            return False
        cleaned = strip_crontab(listed.stdout, drop_root, drop_lines)
        if cleaned == strip_crontab(listed.stdout, lambda root: False):
            return False
        subprocess.run(["crontab", *selector, "-"], input=cleaned, text=True, check=True, capture_output=True)
        return True
    finally:
        if lock is not None:
            lock.close()


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)


def _pid_alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def _wait_for_banner(address: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise LocalSshdError(f"sshd on {address}:{port} did not answer within {timeout:.0f}s")
