"""Servers the benchmarks talk to: started as subprocesses on 127.0.0.1, waited for, measured, stopped.

A server in its own process keeps the client's work off the server's event loop and lets us read its
memory from /proc, as a deployment would see it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from bench.report import REPO_ROOT

PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now (VmRSS), in bytes."""
    return _status_kib(pid, "VmRSS") * 1024


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {key} line")


class ServerProcess:
    """A server subprocess on a free port of 127.0.0.1, ready once `health_path` answers 200."""

    def __init__(
        self,
        command: Sequence[str],
        port: int,
        *,
        health_path: str = "/health",
        start_timeout_s: float = 120.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.health_path = health_path
        self.start_timeout_s = start_timeout_s
        self.env = {**os.environ, **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = Path(f"/tmp/fncall-bench-server-{port}.log")

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the server is not started")
        return self._process.pid

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        log = self._log_path.open("wb")
        self._process = subprocess.Popen(
            self.command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited at start; its log: {self._tail()}")
            try:
                if httpx.get(self.base_url + self.health_path, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{' '.join(self.command)} did not answer in {self.start_timeout_s:.0f} s")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def _tail(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


class PeakRssSampler:
    """Samples a process's RSS on a thread while a block runs; `peak` is the largest sample (bytes)."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRssSampler:
        self.peak = rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return


def fncall_serve(llm_spec: str, database_dir: Path) -> ServerProcess:
    """`fncall serve` (the agent service) on a free port of 127.0.0.1: its agents on `llm_spec`, its memory
    in a fresh SQLite file under `database_dir` (the data directory, where models live, stays as it is), no
    API keys, no access log (uvicorn's warning level)."""
    port = free_port()
    command = [
        str(VENV_BIN / "fncall"),
        "serve",
        "--llm",
        llm_spec,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database-url",
        f"sqlite+aiosqlite:///{database_dir / 'fncall.db'}",
        "--log-level",
        "warning",
    ]
    return ServerProcess(command, port, env={"FNCALL_API_KEYS": ""})
