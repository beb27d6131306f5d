"""Benchmark 6: questions in a row over the same tools, as a deployed assistant gets them.

Each question is one tool round: the client sends the system text, the question and 6 tools, appends a
fixed call and its result, and asks again for the answer. Every question of a run carries the same system
text and tools, so what a server keeps of that prefix between questions decides how long a question takes.
fncall's answer step is a short tools-free prompt that replaces the tools prefix in the KV cache; its
prefix snapshots (`engine.prefix_cache`) bring the prefix back for the next question. llama_cpp.server
sends the tools again with the result, so its single cached sequence keeps the prefix on its own.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.charts import grouped_bar_chart
from bench.context import BenchContext
from bench.local_serving import N_CTX, THREADS, agent_tools, fncall_service, llama_cpp_server, tool_exchange
from bench.report import Section, Table, package_version
from bench.stats import Spread, paired_ratios

NAME = "repeated_tools"
TITLE = "6. Questions in a row over the same tools"

SYSTEM = "You are a financial assistant. Use the tools to look up facts; never guess numbers. Answer briefly."
ROUNDS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "Convert 42 US dollars to Canadian dollars.",
        "convert_currency",
        {"amount": 42, "from_currency": "USD", "to_currency": "CAD"},
        {"converted_amount": 57.46, "rate": 1.3681},
    ),
    (
        "How much is 250 euros in Japanese yen?",
        "convert_currency",
        {"amount": 250, "from_currency": "EUR", "to_currency": "JPY"},
        {"converted_amount": 40512.5, "rate": 162.05},
    ),
    (
        "What is Apple's share price?",
        "get_stock_price",
        {"symbol": "AAPL"},
        {"price": 227.48, "currency": "USD"},
    ),
    (
        "Convert 75 Australian dollars to US dollars.",
        "convert_currency",
        {"amount": 75, "from_currency": "AUD", "to_currency": "USD"},
        {"converted_amount": 49.31, "rate": 0.6575},
    ),
    (
        "What is Nvidia's share price?",
        "get_stock_price",
        {"symbol": "NVDA"},
        {"price": 131.95, "currency": "USD"},
    ),
]
MAX_TOKENS = 48
SNAPSHOTS_OFF = "&prefix_cache_mb=0"


@dataclass
class RunTiming:
    question_s: list[float]

    @property
    def later_median_s(self) -> float:
        """The median question after the first (which pays for the prefix on every server)."""
        return Spread.of(self.question_s[1:]).median


def question_run(base_url: str) -> RunTiming:
    """All questions against one server, each a call request and an answer request."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=600.0)
    run_id = uuid.uuid4().hex[:12]  # a fresh prefix per run: no run starts warm from another
    system = {"role": "system", "content": f"Run {run_id}. {SYSTEM}"}
    tools = agent_tools()
    seconds = []
    for number, (question, name, arguments, result) in enumerate(ROUNDS):
        messages: list[dict[str, Any]] = [system, {"role": "user", "content": question}]
        started = time.perf_counter()
        for request in ("call", "answer"):
            if request == "answer":
                messages += tool_exchange(f"call_{run_id}_{number}", name, arguments, result)
            client.chat.completions.create(
                model="local",
                messages=messages,  # type: ignore[arg-type]
                tools=tools,  # type: ignore[arg-type]
                max_tokens=MAX_TOKENS,
                temperature=0.0,
            )
        seconds.append(time.perf_counter() - started)
    client.close()
    return RunTiming(seconds)


def run(context: BenchContext) -> Section:
    from fncall.engine.models import resolve

    model_path = str(resolve(None))
    repeats = 1 if context.quick else 3
    runs: dict[str, list[RunTiming]] = {"fncall": [], "fncall, snapshots off": [], "llama_cpp.server": []}
    with (
        fncall_service() as ours,
        fncall_service(SNAPSHOTS_OFF) as plain,
        llama_cpp_server(model_path) as peer,
    ):
        servers = [(ours, "fncall"), (plain, "fncall, snapshots off"), (peer, "llama_cpp.server")]
        for repeat in range(repeats):
            for server, name in servers if repeat % 2 == 0 else reversed(servers):
                runs[name].append(question_run(server.base_url))
    return _section(runs, repeats)


FIGURES = ("first question (s)", "each later question, median (s)", "whole run (s)")


def _samples(timing: RunTiming) -> tuple[float, float, float]:
    """One run's value of each of FIGURES."""
    return timing.question_s[0], timing.later_median_s, sum(timing.question_s)


def _section(runs: dict[str, list[RunTiming]], repeats: int) -> Section:
    names = list(runs)
    # samples[name][figure]: that server's value of the figure in each repeat
    samples = {name: list(zip(*(_samples(timing) for timing in runs[name]), strict=True)) for name in names}
    peer = samples["llama_cpp.server"]
    rows = [
        [figure]
        + [Spread.of(samples[name][index]).format(2) for name in names]
        + [paired_ratios(peer[index], samples[name][index]).format(2) if index else "" for name in names[:2]]
        for index, figure in enumerate(FIGURES)
    ]
    table = Table(
        f"{len(ROUNDS)} questions in a row, each a call request and an answer request, same system text and "
        "6 tools (times: lower is better; ratios: llama_cpp.server ÷ fncall, >1 means fncall is faster)",
        ["figure", *names, "peer ÷ fncall", "peer ÷ fncall, snapshots off"],
        rows,
    )
    later = {name: Spread.of(samples[name][1]).median for name in names}
    findings = [
        f"After the first question, fncall answers a question in {later['fncall']:.2f} s (median), against "
        f"{later['fncall, snapshots off']:.2f} s with its prefix snapshots off and "
        f"{later['llama_cpp.server']:.2f} s for llama_cpp.server: the peer takes "
        f"{paired_ratios(peer[1], samples['fncall'][1]).format(2)}x fncall's time.",
    ]
    method = (
        f"Model: the embedded Qwen2.5-Coder-0.5B-Instruct Q4_K_M, {THREADS} thread(s) on every side "
        f"(`FNCALL_BENCH_THREADS`), n_ctx {N_CTX}, greedy, at most {MAX_TOKENS} tokens per request. "
        f"Each run sends {len(ROUNDS)} questions in a row with one system text (starting with a fresh "
        "random id per run) and the 6 tools of benchmark 3. Per question the client sends the question, "
        "then appends a fixed call and its result and asks for the answer, so every server gets the same "
        "requests whatever its model writes; a question's time covers both requests. Sides: "
        "`fncall serve-llm` with its defaults (answer policy and prefix snapshots on), the same with "
        "`prefix_cache_mb=0`, and `python -m llama_cpp.server` "
        f"{package_version('llama_cpp_python')} with its defaults except n_ctx and threads. The first "
        "question pays for the prefix everywhere; the later ones show what each server keeps. "
        f"{repeats} repeats, alternating the order of the sides; ratios are paired within a repeat."
    )
    chart = grouped_bar_chart(
        "bench_repeated_tools.png",
        title="Questions in a row over the same tools (s per question)",
        groups=["first question", "each later question (median)"],
        series={name: [Spread.of(samples[name][0]), Spread.of(samples[name][1])] for name in names},
        unit="seconds",
    )
    return Section(NAME, TITLE, method, [table], [chart], findings)
