"""A throwaway OpenSSH server on 127.0.0.1 for tests that provision over a real SSH connection.

    with running_sshd(tmp_path / "sshd") as server:
        for name, value in server.ansible_env().items():
            monkeypatch.setenv(name, value)
        ...  # Ansible's default (ssh) connection to 127.0.0.1 now reaches this server

Keys (host and client, ed25519) are generated for each server; the client trusts the
host key through its own known_hosts file only. Nothing listens beyond the loopback.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without its privilege separation directory
HOST = "127.0.0.1"


@dataclass(frozen=True)
class SshServer:
    """A running test sshd and what a client needs to log in to it."""

    port: int
    directory: Path
    client_key: Path
    known_hosts: Path
    user: str

    def ssh_args(self) -> str:
        return (f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
                " -o ControlMaster=no -o ControlPath=none")

    def ansible_env(self, client_key: Path | None = None) -> dict[str, str]:
        """The ANSIBLE_* variables that point Ansible's ssh connection at this server
        (with another private key if `client_key` is given)."""
        return {
            "ANSIBLE_REMOTE_PORT": str(self.port),
            "ANSIBLE_PRIVATE_KEY_FILE": str(client_key or self.client_key),
            "ANSIBLE_REMOTE_USER": self.user,
            "ANSIBLE_SSH_ARGS": self.ssh_args(),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
        }


def require_sshd() -> None:
    """Fail (not skip) when OpenSSH's server is not installed."""
    if not SSHD.is_file() or not os.access(SSHD, os.X_OK):
        pytest.fail(f"{SSHD} is missing: install openssh-server (apt-get install openssh-server; .ci/run does it) "
                    "for the tests that provision over SSH", pytrace=False)


def keygen(path: Path, comment: str) -> Path:
    """A new ed25519 key pair without a passphrase at `path` (private) and `path`.pub."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=30)
    path.chmod(0o600)
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as conn:
            conn.settimeout(2)
            return conn.recv(4).startswith(b"SSH-")  # our sshd's banner, not any other listener
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def running_sshd(directory: Path, *, port: int | None = None, start_timeout: float = 15.0) -> Iterator[SshServer]:
    """Start `/usr/sbin/sshd -D` on 127.0.0.1 with fresh keys under `directory`; stop it on exit."""
    require_sshd()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    port = port or _free_port()
    user = getpass.getuser()
    host_key = keygen(directory / "ssh_host_ed25519_key", "dcops-test-host")
    client_key = keygen(directory / "client_ed25519", "dcops-test-client")
    authorized_keys = directory / "authorized_keys"
    authorized_keys.write_text(Path(f"{client_key}.pub").read_text(encoding="utf-8"), encoding="utf-8")
    authorized_keys.chmod(0o600)
    config = directory / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress {HOST}",
        f"Port {port}",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized_keys}",
        f"PidFile {directory / 'sshd.pid'}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        f"AllowUsers {user}",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "MaxStartups 50:30:100",
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
        "",
    ]), encoding="utf-8")
    config.chmod(0o600)
    if os.geteuid() == 0:  # (an unprivileged sshd does no privilege separation and needs none)
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        PRIVSEP_DIR.chmod(0o755)
    test = subprocess.run([str(SSHD), "-t", "-f", str(config)], check=False, capture_output=True, text=True,
                          timeout=30)
    if test.returncode != 0:
        pytest.fail(f"sshd refuses its test configuration {config}: {test.stderr.strip()}", pytrace=False)

    log_path = directory / "sshd.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout
        while not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                log_text = log_path.read_text(encoding="utf-8", errors="replace").strip()
                pytest.fail(f"the test sshd did not accept connections on {HOST}:{port} within {start_timeout} s "
                            f"(exit code {process.returncode}); its output:\n{log_text}", pytrace=False)
            time.sleep(0.1)
        known_hosts = directory / "known_hosts"
        key_type, key_data = Path(f"{host_key}.pub").read_text(encoding="utf-8").split()[:2]
        known_hosts.write_text(f"[{HOST}]:{port} {key_type} {key_data}\n", encoding="utf-8")
        yield SshServer(port=port, directory=directory, client_key=client_key, known_hosts=known_hosts, user=user)
    finally:
        _stop(process)


def sshd_log(server: SshServer) -> str:
    """What the server logged so far (for assertion messages)."""
    return (server.directory / "sshd.log").read_text(encoding="utf-8", errors="replace")
