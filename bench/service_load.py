"""Benchmark 4: the service under load: 200 concurrent 3-step runs over HTTP against a 100 ms model.

Target today (`llm-loop`): the OpenAI-compatible LLM service (`create_llm_app`) over a scripted model that
takes 100 ms per call, in its own process; the client runs each agent run's loop itself with the official
openai SDK (ask, run the `add` tool locally, send the result back; 3 requests per run), 200 runs in flight
at once from a bounded asyncio client.

TARGET SWITCH: the agent HTTP service (`fncall serve`, `POST /v1/agents/{id}/runs`) is being built. Once
it exists, implement `_agent_runs_target` below (start `fncall serve` with an agent on the 100 ms scripted
model, one POST per run) and run with `FNCALL_BENCH_LOAD_TARGET=agent-runs`. Until then that target
refuses to run rather than report numbers it did not measure.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.charts import histogram_chart
from bench.context import BenchContext
from bench.report import Section, Table
from bench.servers import PYTHON, PeakRssSampler, ServerProcess, free_port, process_cpu_s, rss_bytes
from bench.stats import Spread, percentile
from bench.task import ANSWER, STEPS_PER_RUN, TASK

NAME = "service_load"
TITLE = "4. Agent service under load"

LATENCY_S = 0.1
CONCURRENCY = 200
RUNS_PER_REPEAT = 200
TARGET_ENV = "FNCALL_BENCH_LOAD_TARGET"
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
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
    """One load repeat: wall time, every request's latency, the errors, the server's memory."""

    wall_s: float
    request_latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    runs: int = 0
    peak_rss_bytes: int = 0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.request_latencies_s)


class TargetUnavailable(RuntimeError):
    """The chosen load target cannot be run yet."""


def scripted_service(latency_s: float = LATENCY_S) -> ServerProcess:
    port = free_port()
    command = [PYTHON, "-m", "bench.scripted_service", "--port", str(port), "--latency", str(latency_s)]
    return ServerProcess(command, port)


async def _one_run(client: object, latencies: list[float]) -> None:
    """One agent run driven by the client: 3 chat completions, the tool run locally in between."""
    messages: list[dict[str, object]] = [{"role": "user", "content": TASK}]
    for _ in range(STEPS_PER_RUN):
        started = time.perf_counter()
        response = await client.chat.completions.create(  # type: ignore[attr-defined]
            model="scripted-latency", messages=messages, tools=[ADD_TOOL]
        )
        latencies.append(time.perf_counter() - started)
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


async def drive_load(base_url: str, runs: int, concurrency: int) -> LoadOutcome:
    """`runs` agent runs, at most `concurrency` in flight, against the LLM service at `base_url`."""
    from openai import AsyncOpenAI, DefaultAioHttpClient

    # The aiohttp transport: with httpx's own at 200 connections the client spent about 10 ms of CPU per
    # request (measured here), which would be charged to the service as added latency.
    client = AsyncOpenAI(
        base_url=base_url + "/v1",
        api_key="unused",
        max_retries=0,
        timeout=60.0,
        http_client=DefaultAioHttpClient(timeout=60.0),
    )
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []

    async def guarded() -> None:
        async with gate:
            try:
                await _one_run(client, latencies)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    started = time.perf_counter()
    await asyncio.gather(*(guarded() for _ in range(runs)))
    wall_s = time.perf_counter() - started
    await client.close()
    return LoadOutcome(wall_s, latencies, errors, runs)


def _llm_loop_target(runs: int, repeats: int) -> tuple[list[LoadOutcome], list[int]]:
    outcomes = []
    idle_rss = []
    with scripted_service() as server:
        asyncio.run(drive_load(server.base_url, min(runs, CONCURRENCY), CONCURRENCY))  # warm-up, untimed
        idle_rss.append(server.rss_bytes())
        for _ in range(repeats):
            server_cpu, client_cpu = process_cpu_s(server.pid), time.process_time()
            with PeakRssSampler(server.pid) as sampler:
                outcome = asyncio.run(drive_load(server.base_url, runs, CONCURRENCY))
            outcome.server_cpu_s = process_cpu_s(server.pid) - server_cpu
            outcome.client_cpu_s = time.process_time() - client_cpu
            outcome.peak_rss_bytes = sampler.peak
            outcomes.append(outcome)
    return outcomes, idle_rss


def _agent_runs_target(runs: int, repeats: int) -> tuple[list[LoadOutcome], list[int]]:
    raise TargetUnavailable(
        "The agent HTTP service (POST /v1/agents/{id}/runs) does not exist yet, so this target is not "
        "wired: implement _agent_runs_target in bench/service_load.py once `fncall serve` is built."
    )


TARGETS: dict[str, Callable[[int, int], tuple[list[LoadOutcome], list[int]]]] = {
    "llm-loop": _llm_loop_target,
    "agent-runs": _agent_runs_target,
}


def run(context: BenchContext) -> Section:
    target = os.environ.get(TARGET_ENV, "llm-loop")
    if target not in TARGETS:
        raise TargetUnavailable(f"{TARGET_ENV} must be one of {', '.join(TARGETS)}, not {target!r}")
    runs = CONCURRENCY if context.quick else RUNS_PER_REPEAT
    repeats = 2 if context.quick else 5
    outcomes, _ = TARGETS[target](runs, repeats)
    return _section(target, outcomes, runs)


def _section(target: str, outcomes: list[LoadOutcome], runs: int) -> Section:
    ideal_rps = CONCURRENCY / LATENCY_S
    throughput = [outcome.requests / outcome.wall_s for outcome in outcomes]
    added_ms = [[(value - LATENCY_S) * 1e3 for value in outcome.request_latencies_s] for outcome in outcomes]
    p50 = Spread.of([percentile(values, 50) for values in added_ms])
    p99 = Spread.of([percentile(values, 99) for values in added_ms])
    errors = [len(outcome.errors) for outcome in outcomes]
    runs_per_s = Spread.of([outcome.runs / outcome.wall_s for outcome in outcomes])
    efficiency = Spread.of([value / ideal_rps for value in throughput])
    rows = [
        ["requests per repeat", str(outcomes[0].requests)],
        ["throughput (requests/s)", Spread.of(throughput).format(0)],
        ["ideal (concurrency / latency)", f"{ideal_rps:,.0f}"],
        ["throughput ÷ ideal", efficiency.format(3)],
        ["runs completed per s", runs_per_s.format(0)],
        ["added latency p50 (ms)", p50.format(1)],
        ["added latency p99 (ms)", p99.format(1)],
        [
            "server CPU per request (ms)",
            Spread.of([o.server_cpu_s / o.requests * 1e3 for o in outcomes]).format(2),
        ],
        [
            "client CPU per request (ms)",
            Spread.of([o.client_cpu_s / o.requests * 1e3 for o in outcomes]).format(2),
        ],
        ["errors", f"{sum(errors)} in {sum(outcome.requests for outcome in outcomes)} requests"],
    ]
    all_added = [value for values in added_ms for value in values]
    chart = histogram_chart(
        "bench_service_load.png",
        title=f"Latency added to a {LATENCY_S * 1e3:.0f} ms model, {CONCURRENCY} runs in flight",
        samples=all_added,
        x_label="added latency per request (ms)",
        markers={"p50": percentile(all_added, 50), "p99": percentile(all_added, 99)},
    )
    findings = [
        f"{CONCURRENCY} concurrent 3-step runs against a {LATENCY_S * 1e3:.0f} ms model: "
        f"{Spread.of(throughput).median:,.0f} requests/s = {efficiency.median:.2f} of the ideal "
        f"{ideal_rps:,.0f}; added latency p50 {p50.median:.1f} ms, p99 {p99.median:.1f} ms; "
        f"{sum(errors)} errors.",
    ]
    if sum(errors):
        first = next(error for outcome in outcomes for error in outcome.errors)
        findings.append(f"First error: {first}")
    method = (
        f"Target `{target}`: the OpenAI-compatible LLM service (`create_llm_app`) over `Scripted` with "
        f"`latency_s={LATENCY_S}`, served by uvicorn in its own process on 127.0.0.1 "
        "(`python -m bench.scripted_service`). The client (openai SDK `AsyncOpenAI` on its aiohttp "
        "transport; "
        "with its default httpx transport the client itself burnt about 10 ms of CPU per request at 200 "
        f"connections) keeps {CONCURRENCY} agent runs in flight; each run sends the task with an `add` "
        "tool, runs "
        "the tool call locally, sends the result back, and ends on the model's answer: 3 requests per run, "
        f"{runs} runs per repeat, {len(outcomes)} repeats after an untimed warm-up. Ideal throughput is "
        f"concurrency / latency = {ideal_rps:,.0f} requests/s; added latency is each request's time minus "
        f"the model's {LATENCY_S * 1e3:.0f} ms. Client and server share the machine's 2 cores (and other "
        "engineers' jobs), so the client's own work is part of the added latency: the CPU time each side "
        "spent per request is reported to show where the time goes, and it bounds throughput at about "
        "2 cores / (server + client CPU per request) whatever the concurrency. The agent service "
        "(`fncall serve`, `POST "
        "/v1/agents/{id}/runs`) does not exist yet: once it does, set `FNCALL_BENCH_LOAD_TARGET=agent-runs` "
        "after wiring `_agent_runs_target` in `bench/service_load.py`."
    )
    table = Table("Load results (median [min, max] over repeats)", ["figure", "value"], rows)
    return Section(NAME, TITLE, method, [table], [chart], findings)


__all__ = ["LoadOutcome", "drive_load", "rss_bytes", "run", "scripted_service"]
