"""The systems an evaluation runs the cases against, each opened for its run and closed after it.

    fncall               `fncall serve-llm` on the embedded model, driven over HTTP by the openai SDK
    llama-cpp            llama-cpp-python's own OpenAI server on the same GGUF, chat format from the GGUF
    llama-cpp-chatml-fc  the same server with `--chat_format chatml-function-calling`
    fc-agent             fncall's function-calling agent (Runner), in-process on the embedded model
    react-agent          fncall's ReAct agent (ReactRunner), in-process on the embedded model
    base-url             any OpenAI-compatible server already running (`--base-url`)

Servers are started as child processes on a free port of 127.0.0.1 (their output goes to a log file) and
stopped when their target is done, so targets never compete for the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from fncall.errors import ConfigError, FncallError
from fncall.evals.grounding.cases import GroundingCase
from fncall.evals.grounding.client import DEFAULT_MAX_ROUNDS, OpenAIClientDriver
from fncall.evals.grounding.results import Transcript
from fncall.llms.base import LLM

SERVER_TARGETS = ("fncall", "llama-cpp", "llama-cpp-chatml-fc")
AGENT_TARGETS = ("fc-agent", "react-agent")
DEFAULT_TARGETS = (*SERVER_TARGETS, *AGENT_TARGETS)
BASE_URL_TARGET = "base-url"
PEER_N_CTX = 8192
_STARTUP_TIMEOUT_S = 240.0
_STOP_TIMEOUT_S = 15.0


class CaseDriver(Protocol):
    """Runs one case on a target and reports what happened."""

    async def run_case(self, case: GroundingCase) -> Transcript: ...

    async def aclose(self) -> None: ...


class TargetUnavailableError(FncallError):
    """A target could not be started (its server exited or never became ready)."""


@dataclass(frozen=True)
class Target:
    """A named system under evaluation; `open()` starts it and yields the driver that runs cases on it."""

    name: str
    description: str
    open: Callable[[], AbstractAsyncContextManager[CaseDriver]]


@dataclass(frozen=True)
class TargetSettings:
    """What the targets are built from."""

    llm_spec: str = "local:"
    peer_model: Path | None = None
    base_url: str | None = None
    model: str | None = None
    log_dir: Path = Path(".")
    max_rounds: int = DEFAULT_MAX_ROUNDS
    threads: int | None = None


def build_targets(names: list[str], settings: TargetSettings) -> list[Target]:
    """The targets named, in the given order (`base-url` needs `settings.base_url`)."""
    shared_llm = _SharedLLM(settings.llm_spec)
    builders: dict[str, Callable[[], Target]] = {
        "fncall": lambda: _fncall_server(settings),
        "llama-cpp": lambda: _llama_cpp_server(settings, chat_format=None),
        "llama-cpp-chatml-fc": lambda: _llama_cpp_server(settings, chat_format="chatml-function-calling"),
        "fc-agent": lambda: _agent(settings, shared_llm, react=False),
        "react-agent": lambda: _agent(settings, shared_llm, react=True),
        BASE_URL_TARGET: lambda: _base_url(settings),
    }
    unknown = [name for name in names if name not in builders]
    if unknown:
        raise ConfigError(f"Unknown target(s) {', '.join(unknown)}; choose among {', '.join(builders)}.")
    return [builders[name]() for name in names]


def peer_model_path(settings: TargetSettings) -> Path:
    """The GGUF the peer server loads: `peer_model`, else the one the `local:` spec names."""
    if settings.peer_model is not None:
        return settings.peer_model
    from fncall.engine.models import resolve

    scheme, _, rest = settings.llm_spec.partition(":")
    alias = rest.partition("?")[0] if scheme == "local" else ""
    return resolve(alias or None)


def cpu_threads(settings: TargetSettings) -> int:
    """Threads for every target: the configured number, else every core this process may use."""
    if settings.threads:
        return settings.threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------------------- targets


def _fncall_server(settings: TargetSettings) -> Target:
    spec = _with_threads(settings.llm_spec, settings)

    @asynccontextmanager
    async def open_target() -> AsyncIterator[CaseDriver]:
        port = free_port()
        command = [sys.executable, "-m", "fncall.cli", "serve-llm", "--llm", spec]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        base = f"http://127.0.0.1:{port}"
        async with _server_process(command, f"{base}/health", settings.log_dir / "fncall-server.log"):
            driver = OpenAIClientDriver(f"{base}/v1", max_rounds=settings.max_rounds)
            try:
                yield driver
            finally:
                await driver.aclose()

    return Target(
        "fncall", f"`fncall serve-llm --llm {spec}` over HTTP (openai SDK client loop)", open_target
    )


def _llama_cpp_server(settings: TargetSettings, chat_format: str | None) -> Target:
    name = "llama-cpp" if chat_format is None else f"llama-cpp-{_short(chat_format)}"
    threads = cpu_threads(settings)
    format_words = f"--chat_format {chat_format}" if chat_format else "chat format from the GGUF"

    @asynccontextmanager
    async def open_target() -> AsyncIterator[CaseDriver]:
        port = free_port()
        model = peer_model_path(settings)
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
        command += [
            "--n_ctx",
            str(PEER_N_CTX),
            "--n_threads",
            str(threads),
            "--n_threads_batch",
            str(threads),
        ]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        if chat_format:
            command += ["--chat_format", chat_format]
        base = f"http://127.0.0.1:{port}"
        async with _server_process(command, f"{base}/v1/models", settings.log_dir / f"{name}-server.log"):
            driver = OpenAIClientDriver(f"{base}/v1", max_rounds=settings.max_rounds)
            try:
                yield driver
            finally:
                await driver.aclose()

    description = (
        f"`python -m llama_cpp.server` (llama-cpp-python) on the same GGUF, {format_words}, "
        f"n_ctx {PEER_N_CTX}, {threads} threads, other settings default"
    )
    return Target(name, description, open_target)


def _agent(settings: TargetSettings, shared_llm: _SharedLLM, *, react: bool) -> Target:
    from fncall.evals.grounding.agents import AgentDriver

    @asynccontextmanager
    async def open_target() -> AsyncIterator[CaseDriver]:
        llm = shared_llm.get(_with_threads(settings.llm_spec, settings))
        driver = AgentDriver(llm, react=react, max_rounds=settings.max_rounds)
        yield driver

    spec = _with_threads(settings.llm_spec, settings)
    if react:
        return Target("react-agent", f"fncall ReAct agent (ReactRunner) in-process on `{spec}`", open_target)
    return Target("fc-agent", f"fncall function-calling agent (Runner) in-process on `{spec}`", open_target)


def _base_url(settings: TargetSettings) -> Target:
    if not settings.base_url:
        raise ConfigError("The base-url target needs --base-url http://HOST:PORT/v1.")
    url = settings.base_url

    @asynccontextmanager
    async def open_target() -> AsyncIterator[CaseDriver]:
        driver = OpenAIClientDriver(url, model=settings.model, max_rounds=settings.max_rounds)
        try:
            yield driver
        finally:
            await driver.aclose()

    return Target(BASE_URL_TARGET, f"the OpenAI-compatible server at {url}", open_target)


# ----------------------------------------------------------------------------------------- helpers


class _SharedLLM:
    """One in-process model for all agent targets of a run, loaded when the first one needs it."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._llm: LLM | None = None

    def get(self, spec: str) -> LLM:
        if self._llm is None:
            from fncall.llms import from_spec

            self._llm = from_spec(spec)
        return self._llm


def _with_threads(spec: str, settings: TargetSettings) -> str:
    """The local spec with an explicit thread count, so fncall and the peer use the same number."""
    if not spec.startswith("local:") or settings.threads is None or "threads=" in spec:
        return spec
    separator = "&" if "?" in spec else "?"
    return f"{spec}{separator}threads={settings.threads}"


def _short(chat_format: str) -> str:
    return "chatml-fc" if chat_format == "chatml-function-calling" else chat_format


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def _server_process(command: list[str], ready_url: str, log_path: Path) -> AsyncIterator[None]:
    """Runs `command` until the block ends; ready once `ready_url` answers 200."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            await _wait_until_ready(process, ready_url, log_path)
            yield
        finally:
            _stop(process)


async def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STARTUP_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5.0) as client:
        while loop.time() < deadline:
            if process.poll() is not None:
                raise TargetUnavailableError(
                    f"the server exited with code {process.returncode} before it was ready: "
                    f"{_log_tail(log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.5)
    raise TargetUnavailableError(
        f"the server was not ready within {_STARTUP_TIMEOUT_S:g} s (log: {log_path})"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _log_tail(log_path: Path, lines: int = 5) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return f"(no log at {log_path})"
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "(empty log)"
