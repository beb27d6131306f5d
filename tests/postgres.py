"""A private, throwaway PostgreSQL server for the test session.

The PostgreSQL tests do not depend on a system service: the session runs its own server from the
installed binaries (`initdb`, `pg_ctl`, `createdb`), in a temporary directory, listening only on
127.0.0.1 on a free port, with its unix socket inside that directory, and stops it at the end. Without
the binaries the tests that use these fixtures are skipped with the Debian package to install.

tests/conftest.py makes the fixtures available to every test module with:

    from postgres import fresh_postgres_url, postgres_server, postgres_url  # noqa: F401
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import itertools
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DEBIAN_PACKAGE_HINT = "apt-get install postgresql"
SERVER_USER = "postgres"
"""The system account that runs the server when the tests run as root (PostgreSQL refuses root)."""
SUPERUSER = "fncall"
"""The database superuser the server is initialised with; connections are trusted (loopback and a private
socket only), so no password is needed."""

_BINARIES = ("initdb", "pg_ctl", "createdb")
_START_ATTEMPTS = 3
_COMMAND_TIMEOUT_S = 60
# Durability settings off: the data directory is thrown away, and the tests do not measure crash safety.
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "log_min_messages": "warning",
}


@dataclass
class PostgresServer:
    """A running server: `create_database()` gives each test its own empty database."""

    bin_dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    _names: Iterator[int] = field(default_factory=itertools.count, repr=False)

    def url(self, database: str) -> str:
        """The SQLAlchemy URL (asyncpg driver) of `database` on this server."""
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (named `name`, or the next free `fncall_test_N`) and return its URL."""
        database = name or f"fncall_test_{next(self._names)}"
        _run_checked(
            [
                str(self.bin_dir / "createdb"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                database,
            ],
            "createdb",
        )
        return self.url(database)


def find_postgres_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and createdb: the one `initdb` on PATH resolves to, else the
    newest /usr/lib/postgresql/<version>/bin (where Debian's `postgresql` package installs them)."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(path) for path in sorted(versions, key=_version_key, reverse=True)]
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in _BINARIES):
            return directory
    return None


@contextlib.contextmanager
def running_postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    """Initialise a data directory in a fresh temporary folder, start a server on it, and stop it (and
    delete the folder) when the block ends, whatever happened inside."""
    base = Path(tempfile.mkdtemp(prefix="fncall-postgres-"))
    try:
        owner = _server_account()
        if owner is not None:
            os.chown(base, owner.pw_uid, owner.pw_gid)
        data = base / "data"
        _run_checked(
            _as_server_user(
                [
                    str(bin_dir / "initdb"),
                    "--pgdata",
                    str(data),
                    "--username",
                    SUPERUSER,
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                ]
            ),
            "initdb",
        )
        port = _start(bin_dir, base, data)
        try:
            yield PostgresServer(bin_dir=bin_dir, port=port)
        finally:
            _run_quietly(
                _as_server_user([str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"])
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's own PostgreSQL server; skips the test when PostgreSQL or asyncpg is not installed."""
    bin_dir = find_postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or in "
            f"/usr/lib/postgresql/*/bin: install the Debian package with `{DEBIAN_PACKAGE_HINT}`."
        )
    if importlib.util.find_spec("asyncpg") is None:
        pytest.skip("The PostgreSQL driver is not installed: `pip install asyncpg==0.32.0`.")
    with running_postgres(bin_dir) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """`postgresql+asyncpg://...@127.0.0.1:PORT/fncall`: one database shared by the whole session."""
    return postgres_server.create_database("fncall")


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty database for one test, so tests cannot see each other's rows."""
    return postgres_server.create_database()


# --------------------------------------------------------------------------------------- helpers


def _start(bin_dir: Path, base: Path, data: Path) -> int:
    """Start the server on a free loopback port (trying another if that port was taken meanwhile)."""
    log = base / "server.log"
    for _ in range(_START_ATTEMPTS):
        port = _free_port()
        settings = {**_SERVER_SETTINGS, "port": str(port), "unix_socket_directories": str(base)}
        # pg_ctl hands `-o` to the server through a shell, hence the quoting.
        options = shlex.join(arg for name, value in settings.items() for arg in ("-c", f"{name}={value}"))
        command = [str(bin_dir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w", "-t", "30"]
        command += ["-o", options]
        if _run_quietly(_as_server_user(command)) == 0:
            return port
    raise RuntimeError(f"The test PostgreSQL server did not start; its log ends with:\n{_tail(log)}")


def _server_account() -> pwd.struct_passwd | None:
    """The account to run the server as when running as root (created if missing), else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        _run_checked(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            "useradd",
        )
        return pwd.getpwnam(SERVER_USER)


def _as_server_user(argv: Sequence[str]) -> list[str]:
    """`argv` run as the server account when this process is root (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return list(argv)
    if shutil.which("runuser"):
        return ["runuser", "-u", SERVER_USER, "--", *argv]
    return ["su", SERVER_USER, "-s", "/bin/sh", "-c", shlex.join(argv)]


def _server_env() -> dict[str, str]:
    """This environment without the PG* variables that would point the tools at another server."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PG")}


def _run_checked(argv: Sequence[str], what: str) -> None:
    result = subprocess.run(
        argv, env=_server_env(), capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}): {result.stderr.strip() or result.stdout}"
        )


def _run_quietly(argv: Sequence[str]) -> int:
    return subprocess.run(
        argv, env=_server_env(), capture_output=True, timeout=_COMMAND_TIMEOUT_S, check=False
    ).returncode


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log was written)"


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())
