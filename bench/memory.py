"""Benchmark 5: memory footprint (RSS) of `fncall serve`, idle and under benchmark 4's load.

Two configurations, each repeat a fresh set of processes:

- `fncall serve` with its agents on the 100 ms scripted model (benchmark 4's `agent-runs` target): idle
  after a warm-up, at its peak during 200 concurrent 3-step agent runs, and idle again after them (memory
  the load left behind). The scripted model's LLM service process is measured alongside.
- `fncall serve` on the embedded model (its default): idle after loading Qwen 0.5B, and at its peak during
  one streamed generation from the LLM API it serves.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.charts import grouped_bar_chart
from bench.context import BenchContext
from bench.local_serving import N_CTX, THREADS, essay_messages, service_stream
from bench.report import Section, Table
from bench.servers import PeakRssSampler, fncall_serve
from bench.service_load import CONCURRENCY, agent_service, drive_agent_runs, measure_load
from bench.stats import Spread

NAME = "memory"
TITLE = "5. Memory footprint"

MIB = 2**20
WARM_UP_RUNS = 20


@dataclass(frozen=True)
class Footprint:
    """One process's RSS (bytes): idle before the load, at its peak during it, and once it is over."""

    idle: int
    peak: int
    after: int | None = None


def agent_service_footprints() -> tuple[Footprint, Footprint, int]:
    """(`fncall serve`, its scripted model server, failed runs) over one load of benchmark 4, in fresh
    processes."""
    with agent_service() as target:
        base_url, agent_id = target.service.base_url, target.agent_id
        asyncio.run(drive_agent_runs(base_url, agent_id, WARM_UP_RUNS, WARM_UP_RUNS))  # imports, first writes
        service_idle, model_idle = target.service.rss_bytes(), target.model.rss_bytes()
        outcome = measure_load(
            lambda: drive_agent_runs(base_url, agent_id, CONCURRENCY, CONCURRENCY),
            target.service,
            target.model,
        )
        service = Footprint(service_idle, outcome.peak_rss_bytes, target.service.rss_bytes())
        model = Footprint(model_idle, outcome.model_peak_rss_bytes or 0, target.model.rss_bytes())
        return service, model, len(outcome.errors)


def embedded_service_footprint() -> Footprint:
    """`fncall serve` on the embedded model: idle once loaded, peak during one streamed generation."""
    spec = f"local:?threads={THREADS}&n_ctx={N_CTX}"
    with (
        tempfile.TemporaryDirectory(prefix="fncall-bench-memory-") as directory,
        fncall_serve(spec, Path(directory)) as server,
    ):
        idle = server.rss_bytes()
        with PeakRssSampler(server.pid) as sampler:
            service_stream(server.base_url, essay_messages("memory"), 8)
        return Footprint(idle, sampler.peak)


def _mib(values: list[int]) -> Spread:
    return Spread.of([value / MIB for value in values])


def run(context: BenchContext) -> Section:
    repeats = 1 if context.quick else 3
    loaded = [agent_service_footprints() for _ in range(repeats)]
    embedded = [embedded_service_footprint() for _ in range(repeats)]
    errors = sum(failed for _, _, failed in loaded)
    rows: list[list[str]] = []
    spreads: list[tuple[Spread, Spread]] = []
    for label, footprints, load in (
        (
            "`fncall serve`, agents on the scripted 100 ms model",
            [service for service, _, _ in loaded],
            f"{CONCURRENCY} concurrent 3-step agent runs ({errors} failed)",
        ),
        (
            "its model server (LLM service over the scripted model)",
            [model for _, model, _ in loaded],
            f"the same runs' {CONCURRENCY * 3} model calls",
        ),
        (
            "`fncall serve` on the embedded Qwen 0.5B",
            embedded,
            "one streamed generation",
        ),
    ):
        idle = _mib([footprint.idle for footprint in footprints])
        peak = _mib([footprint.peak for footprint in footprints])
        after = [footprint.after for footprint in footprints if footprint.after is not None]
        rows.append([label, idle.format(0), peak.format(0), _mib(after).format(0) if after else "n/a", load])
        spreads.append((idle, peak))
    table = Table(
        "Resident memory (MiB)", ["process", "idle", "peak under load", "idle after the load", "load"], rows
    )
    (agent_idle, agent_peak), (local_idle, local_peak) = spreads[0], spreads[2]
    chart = grouped_bar_chart(
        "bench_memory.png",
        title="`fncall serve` memory (RSS): idle and at peak under load",
        groups=["agents on a remote (scripted) LLM", "embedded Qwen 0.5B"],
        series={"idle": [agent_idle, local_idle], "peak under load": [agent_peak, local_peak]},
        unit="MiB",
        directory=context.charts_dir,
    )
    after_load = _mib([service.after or 0 for service, _, _ in loaded])
    findings = [
        f"`fncall serve` with its agents on a remote LLM: {agent_idle.median:.0f} MiB idle, "
        f"{agent_peak.median:.0f} MiB at peak with {CONCURRENCY} agent runs in flight "
        f"(+{agent_peak.median - agent_idle.median:.0f} MiB, about "
        f"{(agent_peak.median - agent_idle.median) * 1024 / CONCURRENCY:.0f} KiB per run in flight), "
        f"{after_load.median:.0f} MiB once they are over; {errors} runs failed.",
        f"`fncall serve` on the embedded Qwen 0.5B (its default): {local_idle.median:.0f} MiB idle, "
        f"{local_peak.median:.0f} MiB while generating: the model is most of it.",
    ]
    method = (
        "RSS (VmRSS from /proc) of the `fncall serve` process (uvicorn, memory in a fresh SQLite file), "
        "a fresh process each repeat. With agents on the scripted 100 ms model (benchmark 4's "
        "`agent-runs` target): idle after start-up, registering the benchmark agent and "
        f"{WARM_UP_RUNS} warm-up runs; peak is the largest of samples taken every 20 ms while "
        f"{CONCURRENCY} concurrent 3-step runs are served (one `POST /v1/agents/{{id}}/runs` each); "
        "after is read right after the last run answered. The model server those runs call is a "
        "separate process, measured the same way. Embedded model: `fncall serve --llm "
        f"local:?threads={THREADS}&n_ctx={N_CTX}` idle once the model is loaded, peak during one "
        f"streamed generation through its LLM API. {repeats} repeat(s)."
    )
    return Section(NAME, TITLE, method, [table], [chart], findings)
