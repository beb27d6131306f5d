"""Benchmark 4: the agent service under load: 200 concurrent 3-step runs over HTTP against a 100 ms model.

Targets (`FNCALL_BENCH_LOAD_TARGET`: `agent-runs`, `llm-loop`, or both, the default):

- `agent-runs`: `fncall serve` (a uvicorn process, memory in a fresh SQLite file) with one registered agent
  whose LLM is the 100 ms scripted model behind the OpenAI-compatible LLM service in a second process. Each
  run is one `POST /v1/agents/{id}/runs`; the service makes the run's 3 LLM calls (2 tool rounds and the
  answer), runs the tool and records the turn and its traces in memory.
- `llm-loop`: the LLM service alone, the client running each run's loop with the openai SDK (3 requests a
  run, the tool run by the client), to show what the agent layer adds on top.

Ideal throughput is the model's: with 200 runs in flight, each needing 3 sequential 100 ms calls, at most
200 / (3 * 0.1 s) ≈ 667 runs/s complete. Added latency is a run's time minus that 300 ms floor.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.charts import histogram_chart
from bench.context import BenchContext
from bench.report import DOCS_DIR, Section, Table
from bench.scripted_service import CLIENT_TOOL, SERVER_TOOL
from bench.servers import PYTHON, PeakRssSampler, ServerProcess, fncall_serve, free_port, process_cpu_s
from bench.stats import Spread, percentile
from bench.task import ANSWER, INSTRUCTIONS, STEPS_PER_RUN, TASK

NAME = "service_load"
TITLE = "4. Agent service under load"

LATENCY_S = 0.1
CONCURRENCY = 200
RUNS_PER_REPEAT = 200
RUN_FLOOR_S = STEPS_PER_RUN * LATENCY_S
IDEAL_RUNS_PER_S = CONCURRENCY / RUN_FLOOR_S
SCRIPTED_MODEL = "scripted-latency"
TARGET_ENV = "FNCALL_BENCH_LOAD_TARGET"
AGENT_RUNS = "agent-runs"
LLM_LOOP = "llm-loop"
MIB = 2**20
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": CLIENT_TOOL,
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


@dataclass
class LoadOutcome:
    """One load repeat: wall time, each completed run's latency, the failed runs, what the processes spent."""

    wall_s: float
    run_latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests_per_run: int = 1
    service_cpu_s: float = 0.0
    model_cpu_s: float | None = None
    client_cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    model_peak_rss_bytes: int | None = None

    @property
    def completed(self) -> int:
        return len(self.run_latencies_s)

    @property
    def runs(self) -> int:
        return self.completed + len(self.errors)


# ------------------------------------------------------------------------------------------ servers


def scripted_service(latency_s: float = LATENCY_S) -> ServerProcess:
    """The OpenAI-compatible LLM service over the scripted model, in its own process."""
    port = free_port()
    command = [PYTHON, "-m", "bench.scripted_service", "--port", str(port), "--latency", str(latency_s)]
    return ServerProcess(command, port)


@dataclass(frozen=True)
class AgentService:
    """A running `fncall serve`, the scripted model server its agent calls, and that agent's id."""

    service: ServerProcess
    model: ServerProcess
    agent_id: str


def bench_agent_spec(llm_spec: str) -> dict[str, Any]:
    """The agent the load runs: function calling, the built-in `convert_currency` as its one (pure,
    in-process) tool, default memory (every run is a new conversation recorded with its traces)."""
    return {
        "name": "bench-load",
        "type": "function_calling",
        "system_prompt": INSTRUCTIONS,
        "llm": {"spec": llm_spec},
        "tools": [{"type": "builtin", "name": SERVER_TOOL}],
        "parameters": {"max_steps": STEPS_PER_RUN + 2},
    }


@contextmanager
def agent_service(latency_s: float = LATENCY_S) -> Iterator[AgentService]:
    """`fncall serve` on the scripted model with the benchmark's agent registered; stopped on exit."""
    with (
        tempfile.TemporaryDirectory(prefix="fncall-bench-load-") as directory,
        scripted_service(latency_s) as model,
    ):
        llm_spec = f"openai:{model.base_url}/v1#{SCRIPTED_MODEL}"
        with fncall_serve(llm_spec, Path(directory)) as service:
            response = httpx.post(
                service.base_url + "/v1/agents", json=bench_agent_spec(llm_spec), timeout=30
            )
            problem = None if response.status_code == 200 else f"HTTP {response.status_code}: {response.text}"
            if problem is not None:
                raise RuntimeError(f"registering the benchmark agent failed: {problem[:400]}")
            yield AgentService(service, model, response.json()["id"])


# ---------------------------------------------------------------------------------------- load drivers


async def drive_agent_runs(base_url: str, agent_id: str, runs: int, concurrency: int) -> LoadOutcome:
    """`runs` agent runs, one `POST /v1/agents/{agent_id}/runs` each, at most `concurrency` in flight."""
    import aiohttp

    # aiohttp rather than httpx: at 200 connections httpx's client spent about 9 ms of CPU per request here
    # against aiohttp's 2 ms, CPU the service under test would lose on the machine's 2 shared cores.
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120.0)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:

        async def one_run() -> float:
            started = time.perf_counter()
            async with session.post(f"/v1/agents/{agent_id}/runs", json={"input": TASK}) as response:
                body = await response.text()
            elapsed = time.perf_counter() - started
            problem = run_problem(response.status, body)
            if problem is not None:
                raise RuntimeError(problem)
            return elapsed

        return await _bounded(one_run, runs, concurrency, requests_per_run=1)


def run_problem(status: int, body: str) -> str | None:
    """Why an agent-run response is not the task's right answer, or None when it is."""
    if status != 200:
        return f"HTTP {status}: {body[:300]}"
    run = json.loads(body)
    if run.get("status") != "completed" or run.get("final_answer") != ANSWER:
        return (
            f"run {run.get('id')} ended {run.get('status')!r} / {run.get('outcome')!r} with answer "
            f"{run.get('final_answer')!r} and error {run.get('error')!r}"
        )
    return None


async def drive_llm_loop(base_url: str, runs: int, concurrency: int) -> LoadOutcome:
    """`runs` client-driven agent loops against the LLM service at `base_url`, at most `concurrency` in
    flight: 3 chat completions a run, the `add` tool run by the client in between."""
    from openai import AsyncOpenAI, DefaultAioHttpClient

    # The aiohttp transport: with httpx's own at 200 connections the client spent about 10 ms of CPU per
    # request (measured here), which would be charged to the service as added latency.
    client = AsyncOpenAI(
        base_url=base_url + "/v1",
        api_key="unused",
        max_retries=0,
        timeout=120.0,
        http_client=DefaultAioHttpClient(timeout=120.0),
    )

    async def one_run() -> float:
        started = time.perf_counter()
        await _client_loop(client)
        return time.perf_counter() - started

    try:
        return await _bounded(one_run, runs, concurrency, requests_per_run=STEPS_PER_RUN)
    finally:
        await client.close()


async def _client_loop(client: Any) -> None:
    """One agent run driven by the client: ask, run `add` locally, send the result back, until the answer."""
    messages: list[dict[str, object]] = [{"role": "user", "content": TASK}]
    for _ in range(STEPS_PER_RUN):
        response = await client.chat.completions.create(
            model=SCRIPTED_MODEL, messages=messages, tools=[ADD_TOOL]
        )
        message = response.choices[0].message
        if not message.tool_calls:
            if message.content != ANSWER:
                raise RuntimeError(f"unexpected answer {message.content!r}")
            return
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            arguments = json.loads(call.function.arguments)
            result = str(arguments["a"] + arguments["b"])
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    raise RuntimeError(f"the run did not end within {STEPS_PER_RUN} steps")


async def _bounded(
    one_run: Callable[[], Awaitable[float]], runs: int, concurrency: int, *, requests_per_run: int
) -> LoadOutcome:
    """Runs `one_run` `runs` times with at most `concurrency` at once; a run that raises is an error."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []

    async def guarded() -> None:
        async with gate:
            try:
                latencies.append(await one_run())
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    started = time.perf_counter()
    await asyncio.gather(*(guarded() for _ in range(runs)))
    return LoadOutcome(time.perf_counter() - started, latencies, errors, requests_per_run)


def measure_load(
    drive: Callable[[], Awaitable[LoadOutcome]], service: ServerProcess, model: ServerProcess | None = None
) -> LoadOutcome:
    """Runs one load and charges it the CPU time of the service, the model server and this client, and the
    service's (and model server's) peak RSS."""
    service_cpu, client_cpu = process_cpu_s(service.pid), time.process_time()
    model_cpu = process_cpu_s(model.pid) if model is not None else 0.0
    with ExitStack() as samplers:
        service_rss = samplers.enter_context(PeakRssSampler(service.pid))
        model_rss = samplers.enter_context(PeakRssSampler(model.pid)) if model is not None else None
        outcome = asyncio.run(drive())
    outcome.service_cpu_s = process_cpu_s(service.pid) - service_cpu
    outcome.client_cpu_s = time.process_time() - client_cpu
    outcome.peak_rss_bytes = service_rss.peak
    if model is not None and model_rss is not None:
        outcome.model_cpu_s = process_cpu_s(model.pid) - model_cpu
        outcome.model_peak_rss_bytes = model_rss.peak
    return outcome


# -------------------------------------------------------------------------------------------- targets


def _agent_runs_target(runs: int, repeats: int, warm_up_runs: int) -> list[LoadOutcome]:
    with agent_service() as target:
        base_url, agent_id = target.service.base_url, target.agent_id
        warm_up = asyncio.run(drive_agent_runs(base_url, agent_id, warm_up_runs, CONCURRENCY))
        _refuse_broken_warm_up(warm_up)
        return [
            measure_load(
                lambda: drive_agent_runs(base_url, agent_id, runs, CONCURRENCY), target.service, target.model
            )
            for _ in range(repeats)
        ]


def _llm_loop_target(runs: int, repeats: int, warm_up_runs: int) -> list[LoadOutcome]:
    with scripted_service() as server:
        _refuse_broken_warm_up(asyncio.run(drive_llm_loop(server.base_url, warm_up_runs, CONCURRENCY)))
        return [
            measure_load(lambda: drive_llm_loop(server.base_url, runs, CONCURRENCY), server)
            for _ in range(repeats)
        ]


def _refuse_broken_warm_up(outcome: LoadOutcome) -> None:
    if outcome.completed == 0:
        raise RuntimeError(f"every warm-up run failed; the first: {outcome.errors[0]}")


TARGETS: dict[str, Callable[[int, int, int], list[LoadOutcome]]] = {
    AGENT_RUNS: _agent_runs_target,
    LLM_LOOP: _llm_loop_target,
}
TARGET_LABELS = {
    AGENT_RUNS: "`fncall serve`: agent runs",
    LLM_LOOP: "LLM service: client-driven loop",
}


def chosen_targets(setting: str | None) -> list[str]:
    """The targets `FNCALL_BENCH_LOAD_TARGET` names: one, or all (unset or `all`), agent runs first."""
    if setting in (None, "", "all"):
        return list(TARGETS)
    if setting not in TARGETS:
        raise ValueError(f"{TARGET_ENV} must be one of {', '.join(TARGETS)} or all, not {setting!r}")
    return [setting]


def run(context: BenchContext) -> Section:
    repeats = 1 if context.quick else 5
    warm_up_runs = 20 if context.quick else CONCURRENCY
    results = {
        target: TARGETS[target](RUNS_PER_REPEAT, repeats, warm_up_runs)
        for target in chosen_targets(os.environ.get(TARGET_ENV))
    }
    return load_section(results, warm_up_runs, context.charts_dir)


# --------------------------------------------------------------------------------------------- report


def added_latencies_ms(outcome: LoadOutcome) -> list[float]:
    """Each completed run's time over the model's floor of 3 sequential 100 ms calls, in ms."""
    return [(latency - RUN_FLOOR_S) * 1e3 for latency in outcome.run_latencies_s]


def _per_run_ms(outcomes: list[LoadOutcome], seconds: Callable[[LoadOutcome], float]) -> Spread:
    return Spread.of([seconds(outcome) / max(outcome.runs, 1) * 1e3 for outcome in outcomes])


@dataclass(frozen=True)
class TargetSummary:
    """One target's repeats summarised: what the table prints and the findings quote."""

    runs_per_repeat: int
    requests_per_run: int
    throughput: Spread
    added_p50_ms: Spread | None
    added_p99_ms: Spread | None
    service_cpu_ms: Spread
    model_cpu_ms: Spread | None
    client_cpu_ms: Spread
    peak_rss_mib: Spread
    runs: int
    errors: int

    @classmethod
    def of(cls, outcomes: list[LoadOutcome]) -> TargetSummary:
        completed = [outcome for outcome in outcomes if outcome.completed]
        has_model = all(outcome.model_cpu_s is not None for outcome in outcomes)
        return cls(
            runs_per_repeat=outcomes[0].runs,
            requests_per_run=outcomes[0].requests_per_run,
            throughput=Spread.of([outcome.completed / outcome.wall_s for outcome in outcomes]),
            added_p50_ms=_percentile_spread(completed, 50),
            added_p99_ms=_percentile_spread(completed, 99),
            service_cpu_ms=_per_run_ms(outcomes, lambda outcome: outcome.service_cpu_s),
            model_cpu_ms=_per_run_ms(outcomes, lambda outcome: outcome.model_cpu_s or 0.0)
            if has_model
            else None,
            client_cpu_ms=_per_run_ms(outcomes, lambda outcome: outcome.client_cpu_s),
            peak_rss_mib=Spread.of([outcome.peak_rss_bytes / MIB for outcome in outcomes]),
            runs=sum(outcome.runs for outcome in outcomes),
            errors=sum(len(outcome.errors) for outcome in outcomes),
        )

    @property
    def efficiency(self) -> Spread:
        """Throughput as a fraction of the model's limit."""
        return self.throughput.scaled(1 / IDEAL_RUNS_PER_S)

    @property
    def service_cap(self) -> float:
        """Runs/s the service's own CPU allows: one process runs its Python on one core at a time."""
        return 1e3 / self.service_cpu_ms.median

    @property
    def machine_cap(self) -> float:
        """Runs/s all three processes' CPU allows on the machine's 2 cores."""
        model = self.model_cpu_ms.median if self.model_cpu_ms is not None else 0.0
        return 2e3 / (self.service_cpu_ms.median + model + self.client_cpu_ms.median)

    def cells(self) -> list[str]:
        return [
            f"{self.runs_per_repeat} runs x {self.requests_per_run} HTTP request(s)",
            self.throughput.format(0),
            self.efficiency.format(3),
            self.added_p50_ms.format(1) if self.added_p50_ms else "n/a",
            self.added_p99_ms.format(1) if self.added_p99_ms else "n/a",
            self.service_cpu_ms.format(2),
            self.model_cpu_ms.format(2) if self.model_cpu_ms else "in the service",
            self.client_cpu_ms.format(2),
            self.peak_rss_mib.format(0),
            f"{self.errors} in {self.runs} runs",
        ]

    def finding(self, target: str) -> str:
        subject = (
            f"`fncall serve`, {CONCURRENCY} concurrent 3-step agent runs over HTTP (one POST each) on a "
            f"{LATENCY_S * 1e3:.0f} ms model"
            if target == AGENT_RUNS
            else f"The LLM service alone, the same {CONCURRENCY} runs driven by the client (3 requests each)"
        )
        latency = (
            f"added latency per run p50 {self.added_p50_ms.median:,.0f} ms, p99 "
            f"{self.added_p99_ms.median:,.0f} ms over the {RUN_FLOOR_S * 1e3:.0f} ms floor"
            if self.added_p50_ms and self.added_p99_ms
            else "no run completed"
        )
        return (
            f"{subject}: {self.throughput.median:,.0f} runs/s = {self.efficiency.median:.3f} of the ideal "
            f"{IDEAL_RUNS_PER_S:,.0f}; {latency}; {self.errors} errors. CPU bound, not model bound: the "
            f"service spent {self.service_cpu_ms.median:.1f} ms of CPU per run, so its one process "
            f"tops out near {self.service_cap:,.0f} runs/s, and all processes together near "
            f"{self.machine_cap:,.0f} runs/s on the 2 cores."
        )


def _percentile_spread(outcomes: list[LoadOutcome], q: float) -> Spread | None:
    if not outcomes:
        return None
    return Spread.of([percentile(added_latencies_ms(outcome), q) for outcome in outcomes])


ROW_NAMES = [
    "load per repeat",
    "completed runs per s",
    f"÷ ideal ({CONCURRENCY} / {RUN_FLOOR_S:.1f} s = {IDEAL_RUNS_PER_S:,.0f} runs/s)",
    f"added latency per run p50 (ms over {RUN_FLOOR_S * 1e3:.0f} ms)",
    f"added latency per run p99 (ms over {RUN_FLOOR_S * 1e3:.0f} ms)",
    "service CPU per run (ms)",
    "model server CPU per run (ms)",
    "load client CPU per run (ms)",
    "service peak RSS (MiB)",
    "failed runs",
]


def load_section(
    results: dict[str, list[LoadOutcome]], warm_up_runs: int, charts_dir: Path = DOCS_DIR
) -> Section:
    """The report section for the targets' outcomes (the first target's latencies are charted)."""
    summaries = {target: TargetSummary.of(outcomes) for target, outcomes in results.items()}
    columns = [summary.cells() for summary in summaries.values()]
    rows = [[name, *(cells[index] for cells in columns)] for index, name in enumerate(ROW_NAMES)]
    table = Table(
        "Load results (median [min, max] over repeats)",
        ["figure", *(TARGET_LABELS[target] for target in results)],
        rows,
    )
    primary = next(iter(results))
    all_added = [value for outcome in results[primary] for value in added_latencies_ms(outcome)]
    charts = []
    if all_added:
        charts.append(
            histogram_chart(
                "bench_service_load.png",
                title=f"{TARGET_LABELS[primary]}: {CONCURRENCY} in flight, {LATENCY_S * 1e3:.0f} ms model",
                samples=all_added,
                x_label=f"added latency per run over the {RUN_FLOOR_S * 1e3:.0f} ms floor (ms)",
                markers={"p50": percentile(all_added, 50), "p99": percentile(all_added, 99)},
                directory=charts_dir,
            )
        )
    findings = [summary.finding(target) for target, summary in summaries.items()]
    errors = [error for outcomes in results.values() for outcome in outcomes for error in outcome.errors]
    if errors:
        findings.append(f"First error: {errors[0]}")
    method = _method(list(results), len(results[primary]), warm_up_runs)
    return Section(NAME, TITLE, method, [table], charts, findings)


def _method(targets: list[str], repeats: int, warm_up_runs: int) -> str:
    parts = [
        f"{CONCURRENCY} agent runs in flight at once (a bounded asyncio client on 127.0.0.1), each the same "
        "3-step task (two tool rounds, then the answer) against a scripted model that takes "
        f"{LATENCY_S * 1e3:.0f} ms per call, served by the OpenAI-compatible LLM service (`create_llm_app` "
        "over `Scripted`, `python -m bench.scripted_service`) in its own uvicorn process. "
        f"{RUNS_PER_REPEAT} runs per repeat, {repeats} repeat(s) after an untimed warm-up of "
        f"{warm_up_runs} runs. Ideal throughput is the model's limit: {CONCURRENCY} runs in flight / "
        f"({STEPS_PER_RUN} sequential calls x {LATENCY_S * 1e3:.0f} ms) = {IDEAL_RUNS_PER_S:,.0f} runs/s "
        f"({IDEAL_RUNS_PER_S * STEPS_PER_RUN:,.0f} model calls/s). Added latency is each run's time, "
        f"as the client sees it, minus that {RUN_FLOOR_S * 1e3:.0f} ms floor.",
    ]
    if AGENT_RUNS in targets:
        parts.append(
            "Target `agent-runs`: `fncall serve --llm openai:URL#scripted-latency` (uvicorn, SQLite memory "
            "file in a fresh temporary directory) with one agent registered through `POST /v1/agents` "
            "(function calling, the built-in `convert_currency` as its tool); each run is one `POST "
            "/v1/agents/{id}/runs` from an aiohttp client with a 200-connection pool (httpx's client cost "
            "about 9 ms of CPU per request at 200 connections here, aiohttp's 2 ms: CPU the service would "
            "lose), and counts only if it answers 200 with status `completed` and the task's exact answer. "
            "Inside the service each run makes its 3 LLM calls over HTTP to the model server (the openai SDK "
            "backend), runs the tool and records the conversation, the turn and its traces in SQLite. "
            "A service that is CPU bound is capped at 1,000 ms / (its CPU ms per run) runs/s, since its "
            "one process runs Python on one core at a time."
        )
    if LLM_LOOP in targets:
        parts.append(
            "Target `llm-loop`: the LLM service alone; the client (openai SDK `AsyncOpenAI` on its aiohttp "
            "transport) runs each agent loop itself, sending the task with an `add` tool, running the call "
            "locally and sending the result back: 3 requests per run, no memory."
        )
    parts.append(
        "Client, service and model server share the machine's 2 cores (and other engineers' jobs), so every "
        "process's CPU time per run is reported: their sum bounds throughput at about 2 cores / (CPU per "
        "run) whatever the concurrency. `FNCALL_BENCH_LOAD_TARGET=agent-runs|llm-loop` runs one target."
    )
    return "\n\n".join(parts)


__all__ = [
    "AgentService",
    "LoadOutcome",
    "TargetSummary",
    "added_latencies_ms",
    "agent_service",
    "bench_agent_spec",
    "chosen_targets",
    "drive_agent_runs",
    "drive_llm_loop",
    "load_section",
    "measure_load",
    "run",
    "run_problem",
    "scripted_service",
]
