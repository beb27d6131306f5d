"""Benchmark 2: streaming tool-call parsing, fncall's incremental parser against re-parsing the buffer.

A Hermes-style call (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`) whose arguments are 1, 4,
16 and 64 KB of code-like text (quotes, backslashes, newlines, non-ASCII) arrives a few characters at a
time. fncall's `get_format("hermes").stream_parser(tools)` scans each delta once. The baseline is what
vLLM's and SGLang's tool parsers do on every delta: parse the whole call so far with `partial_json_parser`,
serialise the partial arguments again and send what grew since the last delta. Its diff is done at C speed
(vLLM's is a Python loop), so the baseline is, if anything, generous.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Sequence

from bench.charts import curve_chart
from bench.context import BenchContext
from bench.report import Section, Table, package_version
from bench.stats import Spread, loglog_slope, paired_ratios

NAME = "stream_parsing"
TITLE = "2. Streaming tool-call parsing"

SIZES_KB = (1, 4, 16, 64)
DELTA_CHARS = 4
OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"
TOOL_NAME = "write_file"
_LINE_TEMPLATES = (
    'def handler_{n}(request):\n    return {{"status": "ok", "path": "C:\\\\data\\\\{n}.txt"}}\n',
    "    # naïve café résumé {n}: “quoted” text and a tab\there\n",
    '    message = f"item {{index}} of {n}: \\"{n}\\""\n',
)


def call_arguments(size_kb: int) -> dict[str, str]:
    """Arguments whose compact JSON is about `size_kb` KB (1024 characters each) of code-like text."""
    target = size_kb * 1024
    lines: list[str] = []
    length = 0
    index = 0
    while length < target:
        line = _LINE_TEMPLATES[index % len(_LINE_TEMPLATES)].format(n=index)
        lines.append(line)
        length += len(json.dumps(line, ensure_ascii=False)) - 2
        index += 1
    return {"path": "src/generated.py", "content": "".join(lines)}


def model_output(arguments: dict[str, str]) -> str:
    """The text a Hermes-format model writes for one call to `write_file` with these arguments."""
    call = json.dumps({"name": TOOL_NAME, "arguments": arguments}, ensure_ascii=False)
    return f"{OPEN_TAG}\n{call}\n{CLOSE_TAG}"


def deltas(text: str, size: int = DELTA_CHARS) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


# ------------------------------------------------------------------------------------------ parsers


def parse_with_fncall(chunks: Sequence[str]) -> str:
    """Arguments text streamed by fncall's Hermes stream parser (its delta events, joined)."""
    from fncall.formats.chat import get_format
    from fncall.types import ToolCallDeltaEvent

    parser = get_format("hermes").stream_parser([_tool_spec()])
    pieces = []
    for chunk in chunks:
        for event in parser.feed(chunk):
            if isinstance(event, ToolCallDeltaEvent):
                pieces.append(event.arguments_delta)
    for event in parser.finish():
        if isinstance(event, ToolCallDeltaEvent):
            pieces.append(event.arguments_delta)
    return "".join(pieces)


class ReparseBaseline:
    """Re-parse the whole buffer on every delta, as vLLM's and SGLang's streaming tool parsers do."""

    def __init__(self) -> None:
        self._buffer = ""
        self._sent = 0
        self._previous: str | None = None

    def feed(self, chunk: str) -> str:
        """The new argument text this delta makes certain ('' when none)."""
        self._buffer += chunk
        arguments_json = self._current_arguments_json(final=False)
        if arguments_json is None:
            return ""
        previous, self._previous = self._previous, arguments_json
        if previous is None or previous == arguments_json:
            return ""
        # The tail of a partial parse is auto-closed (`"}`), so only the part two different parses agree
        # on is sure (two equal parses agree on that tail too, hence the check above).
        stable = common_prefix_length(previous, arguments_json)
        if stable <= self._sent:
            return ""
        delta = arguments_json[self._sent : stable]
        self._sent = stable
        return delta

    def finish(self) -> str:
        arguments_json = self._current_arguments_json(final=True) or ""
        delta = arguments_json[self._sent :]
        self._sent = len(arguments_json)
        return delta

    def _current_arguments_json(self, *, final: bool) -> str | None:
        from partial_json_parser import Allow, loads

        start = self._buffer.find(OPEN_TAG)
        if start < 0:
            return None
        body = self._buffer[start + len(OPEN_TAG) :]
        end = body.find(CLOSE_TAG)
        if end >= 0:
            body = body[:end]
        body = body.strip()
        if not body:
            return None
        try:
            value = json.loads(body) if final else loads(body, Allow.ALL)
        except Exception:  # a prefix the partial parser cannot read yet: wait for more text
            return None
        if not isinstance(value, dict) or "arguments" not in value:
            return None
        return json.dumps(value["arguments"], ensure_ascii=False)


def parse_with_baseline(chunks: Sequence[str]) -> str:
    parser = ReparseBaseline()
    pieces = [parser.feed(chunk) for chunk in chunks]
    pieces.append(parser.finish())
    return "".join(pieces)


def common_prefix_length(left: str, right: str) -> int:
    """Length of the longest common prefix, by binary search over slice comparisons (C speed)."""
    low, high = 0, min(len(left), len(right))
    while low < high:
        middle = (low + high + 1) // 2
        if left[:middle] == right[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _tool_spec() -> object:
    from fncall.types import ToolSpec

    return ToolSpec(
        name=TOOL_NAME,
        description="Write a file.",
        parameters={
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    )


# ------------------------------------------------------------------------------------------- timing

# Above this size the baseline's quadratic cost (minutes per 64 KB stream) is estimated from a sample.
FULL_BASELINE_MAX_KB = 4
SAMPLED_DELTAS = 256


def _timed(parse: Callable[[Sequence[str]], str], chunks: Sequence[str], expected: dict[str, str]) -> float:
    gc.collect()
    started = time.perf_counter()
    streamed = parse(chunks)
    elapsed = time.perf_counter() - started
    if json.loads(streamed) != expected:
        raise RuntimeError(f"{parse.__name__} streamed arguments that do not parse back to the original")
    return elapsed


def sampled_baseline_seconds(chunks: Sequence[str], samples: int = SAMPLED_DELTAS) -> float:
    """The baseline's time for the whole stream, estimated from every k-th delta.

    Each sampled delta is fed to a baseline whose buffer already holds everything before it, and its
    time stands for the k deltas around it. A re-parse costs in proportion to the buffer, so this is an
    integral estimate of a smooth curve (checked against a full run in the report)."""
    stride = max(1, len(chunks) // samples)
    total = 0.0
    gc.collect()
    for index in range(stride // 2, len(chunks), stride):
        parser = ReparseBaseline()
        parser._buffer = "".join(chunks[:index])
        parser._previous = parser._current_arguments_json(final=False)
        parser._sent = max(0, len(parser._previous or "") - 2)
        started = time.perf_counter()
        parser.feed(chunks[index])
        total += time.perf_counter() - started
    return total * stride


def run(context: BenchContext) -> Section:
    sizes = SIZES_KB[:3] if context.quick else SIZES_KB
    repeats = 2 if context.quick else 5
    ours: dict[int, list[float]] = {size: [] for size in sizes}
    baseline: dict[int, list[float]] = {size: [] for size in sizes}
    delta_counts = {}
    parse_with_fncall(deltas(model_output(call_arguments(1))))  # imports and first-use caches, untimed
    for size in sizes:
        arguments = call_arguments(size)
        chunks = deltas(model_output(arguments))
        delta_counts[size] = len(chunks)
        for _ in range(repeats):  # side by side: each repeat times both parsers on the same stream
            ours[size].append(_timed(parse_with_fncall, chunks, arguments))
            if size <= FULL_BASELINE_MAX_KB:
                baseline[size].append(_timed(parse_with_baseline, chunks, arguments))
            else:
                baseline[size].append(sampled_baseline_seconds(chunks))
    check_kb = 4 if context.quick else 16
    check_arguments = call_arguments(check_kb)
    check_chunks = deltas(model_output(check_arguments))
    full = _timed(parse_with_baseline, check_chunks, check_arguments)
    estimate = sampled_baseline_seconds(check_chunks)
    return _section(sizes, ours, baseline, delta_counts, repeats, (check_kb, full, estimate))


def _section(
    sizes: Sequence[int],
    ours: dict[int, list[float]],
    baseline: dict[int, list[float]],
    delta_counts: dict[int, int],
    repeats: int,
    estimate_check: tuple[int, float, float],
) -> Section:
    rows = []
    for size in sizes:
        our_ms = Spread.of(ours[size]).scaled(1e3)
        base_ms = Spread.of(baseline[size]).scaled(1e3)
        estimated = "≈ " if size > FULL_BASELINE_MAX_KB else ""
        rows.append(
            [
                f"{size} KB",
                str(delta_counts[size]),
                our_ms.format(2),
                Spread.of([value / size for value in ours[size]]).scaled(1e6).format(0),
                estimated + base_ms.format(1),
                estimated + Spread.of([value / size for value in baseline[size]]).scaled(1e6).format(0),
                estimated + paired_ratios(baseline[size], ours[size]).format(1) + "x",
            ]
        )
    our_medians = [Spread.of(ours[size]).median for size in sizes]
    base_medians = [Spread.of(baseline[size]).median for size in sizes]
    our_slope = loglog_slope(sizes, our_medians)
    base_slope = loglog_slope(sizes, base_medians)
    largest = sizes[-1]
    findings = [
        f"fncall's parser grows with exponent {our_slope:.2f} in the argument size (1 = linear), the "
        f"re-parse baseline with {base_slope:.2f} (2 = quadratic).",
        f"At {largest} KB fncall parses the stream in {Spread.of(ours[largest]).median * 1e3:.1f} ms, the "
        f"baseline in {Spread.of(baseline[largest]).median * 1e3:,.0f} ms: "
        f"{paired_ratios(baseline[largest], ours[largest]).format(0)}x faster"
        + (" (baseline estimated from sampled deltas)." if largest > FULL_BASELINE_MAX_KB else "."),
    ]
    check_kb, full, estimate = estimate_check
    method = (
        f"One Hermes call (`{OPEN_TAG}…{CLOSE_TAG}`) to `{TOOL_NAME}` whose arguments are 1, 4, 16 and 64 KB "
        "of code-like text (quotes, backslashes, newlines, non-ASCII), streamed "
        f"{DELTA_CHARS} characters per delta. fncall: `get_format('hermes').stream_parser(tools)`, `feed` "
        "per "
        "delta. Baseline: on every delta, parse the whole call so far with `partial_json_parser` "
        f"{package_version('partial-json-parser')} (the library vLLM's and SGLang's tool parsers use), "
        "serialise the partial arguments with `json.dumps` and send the part that two consecutive parses "
        "agree on (the common-prefix search is done at C speed, so the baseline is generous). Both streams "
        f"are checked to parse back to the original arguments. {repeats} repeats per size, both parsers "
        "timed on the same stream within each repeat. The baseline is quadratic: a full 64 KB stream takes "
        f"minutes, so above {FULL_BASELINE_MAX_KB} KB its time (marked ≈) is the sum over every k-th delta "
        f"({SAMPLED_DELTAS} sampled deltas), each timed on a buffer holding the text before it, times k. "
        f"Cross-check in this run at {check_kb} KB: full stream {full * 1e3:,.0f} ms, estimate "
        f"{estimate * 1e3:,.0f} ms ({estimate / full:.2f}x). fncall is always timed on the full stream."
    )
    table = Table(
        "Time to parse the whole stream, and per KB of arguments (flat µs/KB = linear)",
        ["arguments", "deltas", "fncall ms", "fncall µs/KB", "re-parse ms", "re-parse µs/KB", "speed-up"],
        rows,
    )
    chart = curve_chart(
        "bench_stream_parsing.png",
        title=f"Streaming tool-call parsing ({DELTA_CHARS} characters per delta)",
        xs=list(sizes),
        series={
            "fncall stream parser": [Spread.of(ours[size]).scaled(1e3) for size in sizes],
            "re-parse each delta (vLLM/SGLang style)": [
                Spread.of(baseline[size]).scaled(1e3) for size in sizes
            ],
        },
        x_label="arguments size (KB)",
        y_label="ms per stream (log scale)",
    )
    return Section(NAME, TITLE, method, [table], [chart], findings)
