"""`fncall eval ...`: evaluation commands (the lead mounts `eval_app` as `fncall eval`)."""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from fncall.evals.bfcl_cli import bfcl_app

if TYPE_CHECKING:
    from fncall.evals.grounding.targets import TargetSettings

eval_app = typer.Typer(help="Evaluations of fncall and its peers on the same cases.", no_args_is_help=True)
eval_app.add_typer(bfcl_app)

_console = Console()
_progress_console = Console(stderr=True, soft_wrap=True)


@eval_app.callback()
def _evaluations() -> None:
    """Evaluations of fncall and its peers on the same cases."""


def _fail(message: str) -> typer.Exit:
    _progress_console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code=1)


@eval_app.command("grounding")
def grounding(
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            help="Target to run (repeatable): fncall, llama-cpp, llama-cpp-chatml-fc, fc-agent, react-agent, "
            "base-url. Default: all but base-url, or only base-url when --base-url is given.",
        ),
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option(
            "--category",
            "-c",
            help="Category to run (repeatable): single_call, multi_fact, tool_error, list_result, "
            "dependent_calls, no_tool_fits. Default: all.",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Run only the first N cases of each category.")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Directory for grounding.md, grounding.png and grounding.json.")
    ] = Path("grounding-report"),
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Evaluate this OpenAI-compatible server (http://HOST:PORT/v1)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model name to send to --base-url (default: its first model)."),
    ] = None,
    llm: Annotated[
        str, typer.Option("--llm", help="Backend spec of the fncall server and the agents.")
    ] = "local:",
    peer_model: Annotated[
        Path | None,
        typer.Option("--peer-model", help="GGUF for the llama-cpp peer (default: the model --llm names)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Cases run at the same time on a target.")] = 1,
    max_rounds: Annotated[int, typer.Option(min=1, help="Model requests allowed per case.")] = 4,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for every local target (default: all cores).")
    ] = None,
) -> None:
    """Run the grounding evaluation and write its report (Markdown, PNG chart, JSON per case)."""
    from fncall.errors import FncallError
    from fncall.evals.grounding.cases import select_cases
    from fncall.evals.grounding.report import ReportMeta, results_table, summarise, write_report
    from fncall.evals.grounding.results import CaseResult, TargetRun
    from fncall.evals.grounding.runner import run_target
    from fncall.evals.grounding.targets import (
        BASE_URL_TARGET,
        DEFAULT_TARGETS,
        TargetSettings,
        build_targets,
        cpu_threads,
    )

    names = list(target or ([] if base_url else DEFAULT_TARGETS))
    if base_url and BASE_URL_TARGET not in names:
        names.append(BASE_URL_TARGET)
    settings = TargetSettings(
        llm_spec=llm,
        peer_model=peer_model,
        base_url=base_url,
        model=model,
        log_dir=Path(tempfile.gettempdir()) / "fncall-grounding-logs",
        max_rounds=max_rounds,
        threads=threads,
    )
    try:
        cases = select_cases(category, limit)
        targets = build_targets(names, settings)
    except FncallError as exc:
        raise _fail(str(exc)) from exc

    def report_progress(result: CaseResult) -> None:
        verdict = "[green]pass[/]" if result.passed else "[red]FAIL[/]"
        why = "" if result.passed else f"  {escape('; '.join(result.reasons))[:200]}"
        _progress_console.print(
            f"{escape(result.target)} {escape(result.case_id)} {verdict} {result.seconds:.2f}s{why}",
            highlight=False,
        )

    _progress_console.print(f"{len(cases)} cases on {', '.join(names)}")
    meta = ReportMeta(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        model=_model_name(settings, names),
        machine=_machine(cpu_threads(settings)),
        max_rounds=max_rounds,
        concurrency=concurrency,
        limit_per_category=limit,
    )
    paths = write_report([], cases, meta, out)

    async def run_all() -> list[TargetRun]:
        # One event loop for every target (the agents share one model), the report rewritten after each
        # target so that a long run leaves its results early.
        runs: list[TargetRun] = []
        for chosen in targets:
            runs.append(await run_target(chosen, cases, concurrency=concurrency, progress=report_progress))
            write_report(runs, cases, meta, out)
        return runs

    runs = asyncio.run(run_all())
    for run in runs:
        if run.unavailable:
            _progress_console.print(f"[yellow]{escape(run.name)} did not run:[/] {escape(run.unavailable)}")
    table = results_table([summarise(run) for run in runs], cases)
    _console.print(table, markup=False, highlight=False, soft_wrap=True)
    _console.print(f"report: {paths['markdown']}  chart: {paths['chart']}  cases: {paths['json']}")


def _model_name(settings: TargetSettings, names: list[str]) -> str:
    from fncall.errors import FncallError
    from fncall.evals.grounding.targets import peer_model_path

    local_targets = [name for name in names if name != "base-url"]
    if not local_targets:
        return settings.model or f"served at {settings.base_url}"
    try:
        return peer_model_path(settings).name
    except FncallError:
        return settings.llm_spec


def _machine(threads: int) -> str:
    cores = os.cpu_count() or 0
    return f"{threads} CPU thread(s) per target on a {cores}-core {platform.machine()} machine"
