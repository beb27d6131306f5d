"""Benchmark 5: memory footprint (RSS) of the service, idle and under benchmark 4's load.

`fncall serve` (the agent service) does not exist yet, so this measures what does: the LLM service that
benchmark 4 loads (over the 100 ms scripted model), idle after a warm-up and at its peak during 200
concurrent 3-step runs, and `fncall serve-llm --llm local:` with the embedded model, idle after loading and
at its peak during one generation. Each repeat starts a fresh server process.
"""

from __future__ import annotations

import asyncio

from bench.charts import grouped_bar_chart
from bench.context import BenchContext
from bench.local_serving import essay_messages, fncall_service, service_stream
from bench.report import Section, Table
from bench.servers import PeakRssSampler
from bench.service_load import CONCURRENCY, drive_load, scripted_service
from bench.stats import Spread

NAME = "memory"
TITLE = "5. Memory footprint"

MIB = 2**20


def _scripted_service_rss() -> tuple[int, int, int]:
    """(idle RSS, peak RSS under load, errors) of one fresh scripted-model service."""
    with scripted_service() as server:
        asyncio.run(drive_load(server.base_url, 10, 10))  # warm-up: imports, first requests
        idle = server.rss_bytes()
        with PeakRssSampler(server.pid) as sampler:
            outcome = asyncio.run(drive_load(server.base_url, CONCURRENCY, CONCURRENCY))
        return idle, sampler.peak, len(outcome.errors)


def _local_service_rss() -> tuple[int, int]:
    """(idle RSS after loading the model, peak RSS during one generation) of `fncall serve-llm --llm "
    "local:`."""
    with fncall_service() as server:
        idle = server.rss_bytes()
        with PeakRssSampler(server.pid) as sampler:
            service_stream(server.base_url, essay_messages("memory"), 8)
        return idle, sampler.peak


def run(context: BenchContext) -> Section:
    repeats = 1 if context.quick else 3
    scripted = [_scripted_service_rss() for _ in range(repeats)]
    local = [_local_service_rss() for _ in range(repeats)]
    scripted_idle = Spread.of([idle / MIB for idle, _, _ in scripted])
    scripted_peak = Spread.of([peak / MIB for _, peak, _ in scripted])
    local_idle = Spread.of([idle / MIB for idle, _ in local])
    local_peak = Spread.of([peak / MIB for _, peak in local])
    errors = sum(error for _, _, error in scripted)
    table = Table(
        "Resident memory (MiB)",
        ["process", "idle", "peak under load", "load"],
        [
            [
                "LLM service, scripted 100 ms model",
                scripted_idle.format(0),
                scripted_peak.format(0),
                f"{CONCURRENCY} concurrent 3-step runs ({errors} errors)",
            ],
            [
                "`fncall serve-llm --llm local:` (Qwen 0.5B)",
                local_idle.format(0),
                local_peak.format(0),
                "one streamed generation",
            ],
        ],
    )
    chart = grouped_bar_chart(
        "bench_memory.png",
        title="Service memory (RSS): idle and at peak under load",
        groups=["scripted-model service", "embedded-model service"],
        series={"idle": [scripted_idle, local_idle], "peak under load": [scripted_peak, local_peak]},
        unit="MiB",
    )
    findings = [
        f"LLM service over the scripted model: {scripted_idle.median:.0f} MiB idle, "
        f"{scripted_peak.median:.0f} MiB at peak with {CONCURRENCY} runs in flight.",
        f"With the embedded Qwen 0.5B: {local_idle.median:.0f} MiB idle, {local_peak.median:.0f} MiB while "
        "generating.",
        "`fncall serve` (the agent service) is not built yet; its row will replace the scripted one.",
    ]
    method = (
        "RSS (VmRSS from /proc) of the server process. Idle: after start-up and a short warm-up. Peak: the "
        "largest of samples taken every 20 ms during the load. Scripted service: the process benchmark 4 "
        f"loads, under {CONCURRENCY} concurrent 3-step runs; embedded model: `fncall serve-llm` during one "
        f"streamed generation. {repeats} repeats, each a fresh server process."
    )
    return Section(NAME, TITLE, method, [table], [chart], findings)
