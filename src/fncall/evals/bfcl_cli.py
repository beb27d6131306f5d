"""`fncall eval bfcl`: the Berkeley Function Calling Leaderboard's single-turn categories on any backend, in
each mode, scored by BFCL's own checker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

bfcl_app = typer.Typer(help="Benchmarks of function calling.")

_console = Console(soft_wrap=True)
_err_console = Console(stderr=True, soft_wrap=True)


@bfcl_app.command("bfcl")
def bfcl(
    llm: Annotated[
        str,
        typer.Option(
            "--llm",
            envvar="FNCALL_LLM",
            help="Backend spec: local:[ALIAS|PATH] (served on 127.0.0.1 for the run) or openai:URL#MODEL.",
        ),
    ] = "local:",
    categories: Annotated[
        list[str] | None,
        typer.Option("--category", "-c", help="A single-turn category (repeat it); default: all of them."),
    ] = None,
    modes: Annotated[
        list[str] | None,
        typer.Option(
            "--mode",
            "-m",
            help="free, constrained, react or react_constrained (repeat it); default: the first three.",
        ),
    ] = None,
    sample_size: Annotated[
        int, typer.Option("--sample-size", "-n", min=0, help="Cases per category (0: every case).")
    ] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the case sample (same cases in every mode).")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 1,
    max_tokens: Annotated[int, typer.Option(min=1, help="Token limit of each answer.")] = 512,
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Where results, summary, report and chart go.")
    ] = Path("bfcl-results"),
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Keep the cases the output directory's results.jsonl already has in every mode and run the "
            "rest of the sample; the report covers the sample. Without it, results.jsonl starts empty.",
        ),
    ] = False,
) -> None:
    """Run BFCL's single-turn categories and write results.jsonl, summary.json, report.md and bfcl.png."""
    from fncall.errors import FncallError
    from fncall.evals.bfcl import DEFAULT_CATEGORIES, DEFAULT_MODES, check_categories, check_modes

    try:
        chosen_categories = check_categories(categories or list(DEFAULT_CATEGORIES))
        chosen_modes = check_modes(modes or list(DEFAULT_MODES))
        summary_text = asyncio.run(
            _run(
                llm,
                chosen_categories,
                chosen_modes,
                sample_size or None,
                seed,
                concurrency,
                max_tokens,
                output_dir,
                resume,
            )
        )
    except FncallError as error:
        _err_console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(code=1) from error
    _console.print(Markdown(summary_text))
    _console.print(f"Results, summary, report and chart are in {output_dir}/")


@bfcl_app.command("bfcl-report")
def bfcl_report(
    results_files: Annotated[
        list[Path],
        typer.Argument(
            exists=True, dir_okay=False, help="results.jsonl files of BFCL runs (a run's or a copy of it)."
        ),
    ],
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Where summary.json, report.md and bfcl.png go.")
    ] = Path("bfcl-results"),
    title: Annotated[str, typer.Option(help="The chart's title.")] = "BFCL accuracy",
) -> None:
    """Combine the results of several BFCL runs (each with its own categories) into one report and chart,
    without running the model: the cases every run finished in all its modes, each counted once."""
    from fncall.evals.bfcl import combined_results, markdown_table, write_report

    results = combined_results(results_files)
    if not results:
        _err_console.print("[bold red]error:[/] the results files hold no case finished in every mode.")
        raise typer.Exit(code=1)
    output_dir.mkdir(parents=True, exist_ok=True)
    run = {
        "combined from": ", ".join(str(path) for path in results_files),
        "cases per mode": len({(result.category, result.id) for result in results}),
    }
    summary = write_report(results, output_dir, run, title=title)
    _console.print(Markdown(markdown_table(summary)))
    _console.print(f"Summary, report and chart are in {output_dir}/")


async def _run(
    spec: str,
    categories: list[str],
    modes: list[str],
    sample_size: int | None,
    seed: int,
    concurrency: int,
    max_tokens: int,
    output_dir: Path,
    resume: bool,
) -> str:
    from fncall.evals.bfcl import (
        BFCL_EVAL_VERSION,
        RESULTS_FILE,
        CaseResult,
        append_result,
        finished_results,
        load_cases,
        markdown_table,
        open_target,
        run_cases,
        sample_cases,
        write_report,
    )

    cases = [
        case for category in categories for case in sample_cases(load_cases(category), sample_size, seed)
    ]
    output_dir.mkdir(parents=True, exist_ok=True)
    results_path = output_dir / RESULTS_FILE
    kept = finished_results(results_path, modes) if resume and results_path.exists() else []
    results_path.write_text("".join(result.model_dump_json() + "\n" for result in kept))
    sampled = {(case.category, case.id) for case in cases}
    earlier = [result for result in kept if (result.category, result.id) in sampled]
    finished = {(result.category, result.id) for result in earlier}
    cases = [case for case in cases if (case.category, case.id) not in finished]
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    async with open_target(spec) as target:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[correct]} right"),
            TimeElapsedColumn(),
            console=_err_console,
        ) as progress:
            right = {mode: sum(r.valid for r in earlier if r.mode == mode) for mode in modes}
            tasks = {
                mode: progress.add_task(
                    f"{mode:>11}",
                    total=len(cases) + len(finished),
                    completed=len(finished),
                    correct=right[mode],
                )
                for mode in modes
            }

            def _on_result(result: CaseResult) -> None:
                append_result(results_path, result)
                right[result.mode] += int(result.valid)
                progress.update(tasks[result.mode], advance=1, correct=right[result.mode])

            results = earlier + await run_cases(
                target.llm,
                cases,
                modes,  # type: ignore[arg-type]  # validated by check_modes
                concurrency=concurrency,
                max_tokens=max_tokens,
                on_result=_on_result,
            )
    run = {
        "model": target.model,
        "reached through": target.route,
        "categories": ", ".join(categories),
        "modes": ", ".join(modes),
        "sample": f"{sample_size} cases per category (fewer where a category has fewer), seed {seed}"
        if sample_size
        else "every case",
        "cases per mode": len(cases) + len(finished),
        "max tokens": max_tokens,
        "concurrency": concurrency,
        "bfcl-eval": BFCL_EVAL_VERSION,
        "started (UTC)": started_at.strftime("%Y-%m-%d %H:%M"),
        "duration (s)": round(time.perf_counter() - started, 1),
    }
    if finished:
        run["resumed"] = f"{len(finished)} cases per mode kept from an earlier run (not in the duration)"
    summary = write_report(results, output_dir, run)
    return markdown_table(summary)
