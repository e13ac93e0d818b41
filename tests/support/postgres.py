"""A real PostgreSQL server for tests, from Debian's binaries (`postgresql` package).

`initdb` runs in a temporary folder as the `postgres` user (it refuses root), the server listens on
the addresses asked (loopback by default, or a bridge that network namespaces reach) on a free
port, with password (SCRAM) authentication over TCP, and is stopped, its folder removed, at the
end. `restart()` stops and starts it on the same port and data, as an operator's restart would.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PASSWORD = "rag-test-password"


def postgres_bin() -> Path | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self, listen: str = "127.0.0.1", port: int | None = None) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL's server is not installed (apt-get install postgresql; `make install` "
                               "does it)")
        self.bin = bin_dir
        self.listen = listen
        self.port = port or free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="rag-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self._process: subprocess.Popen | None = None
        user = pwd.getpwnam("postgres")
        self._uid, self._gid = user.pw_uid, user.pw_gid
        os.chown(self.folder, self._uid, self._gid)
        password_file = self.folder / "password"
        password_file.write_text(PASSWORD)
        os.chown(password_file, self._uid, self._gid)
        self._as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--no-sync",
                           "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
                           "-E", "UTF8", "--locale=C.UTF-8"])
        with open(self.data / "pg_hba.conf", "a") as hba:  # clients in the tests' namespaces too
            hba.write("host all all 0.0.0.0/0 scram-sha-256\n")

    def _as_postgres(self, args: list[str]) -> None:
        result = subprocess.run(args, check=False, user=self._uid, group=self._gid, capture_output=True, text=True,
                                cwd=self.folder)
        if result.returncode:
            raise RuntimeError(f"{args[0]} failed: {result.stderr or result.stdout}")

    def url(self, database: str = "postgres", host: str | None = None) -> str:
        return f"postgresql://postgres:{PASSWORD}@{host or self.listen}:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.log, "a")  # noqa: SIM115 (the server writes it while running)
        self._process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", f"listen_addresses={self.listen}", "-c", f"unix_socket_directories={self.folder}",
             "-c", "max_connections=200", "-c", "fsync=on"],
            user=self._uid, group=self._gid, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run([str(self.bin / "pg_isready"), "-h", self.listen, "-p", str(self.port)],
                                   capture_output=True, check=False)
            if ready.returncode == 0:
                return
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self, mode: signal.Signals = signal.SIGINT, timeout: float = 30.0) -> None:
        """SIGINT is PostgreSQL's fast shutdown (clients cut, work committed kept); SIGQUIT its
        immediate one (crash recovery on the next start)."""
        if self._process is None:
            return
        self._process.send_signal(mode)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def running_postgres(listen: str = "127.0.0.1") -> Iterator[PostgresServer]:
    server = PostgresServer(listen)
    try:
        server.start()
        yield server
    finally:
        server.close()
