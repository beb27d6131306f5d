"""`python -m bench [NAME ...] [--quick]`: run the benchmarks and write docs/benchmarks.md and its charts.

With no names it runs all six in order; with names, only those, and the report keeps the other sections
from their last run (bench/results/*.json).
"""

from __future__ import annotations

import argparse
import sys
import time
from types import ModuleType

from bench import agent_overhead, local_serving, memory, repeated_tools, service_load, stream_parsing
from bench.context import BenchContext
from bench.report import REPORT_PATH, load_sections, machine_info, render_report, save_section

BENCHMARKS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (agent_overhead, stream_parsing, local_serving, service_load, memory, repeated_tools)
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="any of: " + ", ".join(BENCHMARKS))
    parser.add_argument(
        "--quick", action="store_true", help="few repeats, small sizes: checks the harness only"
    )
    options = parser.parse_args(argv)
    unknown = [name for name in options.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    context = BenchContext(quick=options.quick)
    failures = []
    for name in options.names or list(BENCHMARKS):
        print(f"[bench] {name} ...", flush=True)
        started = time.perf_counter()
        machine = machine_info()
        try:
            section = BENCHMARKS[name].run(context)
        except Exception as exc:  # one broken benchmark must not lose the others' results
            failures.append(name)
            print(f"[bench] {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            continue
        section.duration_s = time.perf_counter() - started
        section.quick = options.quick
        section.machine = machine
        save_section(section)
        print(f"[bench] {name} done in {section.duration_s:.0f} s", flush=True)
        for finding in section.findings:
            print(f"    {finding}", flush=True)
    REPORT_PATH.write_text(render_report(load_sections(list(BENCHMARKS))), encoding="utf-8")
    print(f"[bench] wrote {REPORT_PATH}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
