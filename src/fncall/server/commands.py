"""The agent service's commands: `fncall serve`, `fncall agent run SPEC QUESTION`, `fncall memory show ID`.

Mount them on the main CLI with:

    from fncall.server.commands import agent_app, memory_app, serve_command
    app.command("serve")(serve_command)
    app.add_typer(agent_app, name="agent")
    app.add_typer(memory_app, name="memory")

Heavy imports (FastAPI, SQLAlchemy, the engine) happen inside the commands, so `fncall --help` stays fast.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from fncall.agents.events import RunEvent
    from fncall.llms.base import LLM
    from fncall.server.agent_store import AgentDefinition

agent_app = typer.Typer(help="Run agents described by spec files (JSON or YAML).", no_args_is_help=True)
memory_app = typer.Typer(
    help="Conversation memory: conversations, turns and their traces.", no_args_is_help=True
)

_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)

EXIT_ANSWERED = 0
EXIT_ERROR = 1
EXIT_NOT_ANSWERED = 2
EXIT_PAUSED = 3

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", envvar="FNCALL_DATABASE_URL", help="Memory database (default: data dir)."),
]


# ------------------------------------------------------------------------------------------- serve


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    llm: str | None = None,
    database_url: str | None = None,
    api_keys: list[str] | None = None,
    log_level: str = "info",
) -> None:
    """Run the agent service with uvicorn: the embedded model (and its LLM API) unless `llm` names another
    backend, the built-in Exchange and stock assistants, memory in `database_url`."""
    import uvicorn

    from fncall.server.app import create_app
    from fncall.server.auth import api_keys_from_env, warn_if_exposed

    keys = api_keys if api_keys else api_keys_from_env()
    warn_if_exposed(host, keys)
    app = create_app(llm, database_url=database_url, api_keys=keys)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to bind (a non-loopback one needs API keys).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    llm: Annotated[
        str | None,
        typer.Option(
            "--llm",
            envvar="FNCALL_LLM",
            help="The agents' LLM: local:[ALIAS|PATH] (default; also served as /v1/chat/completions) or a "
            "remote backend, e.g. openai:http://HOST:PORT/v1#MODEL.",
        ),
    ] = None,
    database_url: DatabaseOption = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option("--api-key", help="Require this key (repeatable); default: $FNCALL_API_KEYS."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the agent API, /exchange, the ml-commons routes and (on the embedded model) the LLM API."""
    from fncall.errors import FncallError

    try:
        serve(host=host, port=port, llm=llm, database_url=database_url, api_keys=api_key, log_level=log_level)
    except FncallError as exc:
        _err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=EXIT_ERROR) from exc


# --------------------------------------------------------------------------------------- agent run


async def agent_run(
    spec_path: Path,
    question: str,
    *,
    memory_id: str | None = None,
    llm: str | None = None,
    database_url: str | None = None,
    trace: bool = False,
    llm_factory: Callable[[str], LLM] | None = None,
) -> int:
    """Run the agent a spec file describes on `question`, recorded in memory (continuing `memory_id`), print
    its answer; the exit code says how it ended (0 answered, 2 not answered, 3 paused, 1 error).
    `llm_factory` turns the spec's `llm.spec` into a backend (default `fncall.llms.from_spec`)."""
    from fncall.errors import FncallError
    from fncall.memory import MemoryStore, default_database_url
    from fncall.server.agent_store import AgentStore
    from fncall.server.runs import RunMetrics, RunService

    try:
        definition = _load_definition(spec_path, llm)
    except FncallError as exc:
        _err.print(f"[bold red]error:[/] {escape(str(exc))}")
        return EXIT_ERROR
    url = database_url or default_database_url()
    memory = await MemoryStore.open(url)
    agents = await AgentStore.open(url)
    service = RunService(memory, agents, llm_factory or _from_spec, RunMetrics())
    try:
        prepared = await service.prepare_definition(definition, question, memory_id=memory_id)
        active = service.launch(prepared, listen=True)
        async for event in active.events():
            if trace:
                _print_event(event)
        finished = await active.task
    except FncallError as exc:
        _err.print(f"[bold red]error:[/] {escape(str(exc))}")
        return EXIT_ERROR
    finally:
        await service.shutdown()
        await agents.close()
        await memory.close()
    interaction = finished.interaction
    _err.print(f"memory_id: {interaction.memory_id}  interaction: {interaction.id}", highlight=False)
    if interaction.status == "paused":
        for item in finished.pending:
            call = item["call"]
            arguments = json.dumps(call.get("arguments", {}), ensure_ascii=False)
            _out.print(
                f"waiting for {item['reason']}: {call['name']}({arguments}) id={call['id']}", markup=False
            )
        return EXIT_PAUSED
    if interaction.status != "completed":
        _out.print(interaction.error or f"The run {interaction.status}.", markup=False, highlight=False)
        return EXIT_ERROR
    _out.print(interaction.response or "", markup=False, highlight=False)
    return EXIT_ANSWERED if interaction.outcome == "answered" else EXIT_NOT_ANSWERED


@agent_app.command("run")
def agent_run_command(
    spec: Annotated[Path, typer.Argument(help="The agent spec file (.json, else YAML).", exists=True)],
    question: Annotated[str, typer.Argument(help="What to ask the agent.")],
    memory_id: Annotated[str | None, typer.Option(help="Continue this conversation.")] = None,
    llm: Annotated[str | None, typer.Option("--llm", help="Use this LLM instead of the spec's.")] = None,
    database_url: DatabaseOption = None,
    trace: Annotated[bool, typer.Option("--trace", help="Show each step on stderr.")] = False,
) -> None:
    """Run an agent from its spec file, remember the turn, and print the answer."""
    code = asyncio.run(
        agent_run(spec, question, memory_id=memory_id, llm=llm, database_url=database_url, trace=trace)
    )
    raise typer.Exit(code=code)


def _load_definition(path: Path, llm: str | None) -> AgentDefinition:
    import yaml

    from fncall.agents.spec import AgentSpecError
    from fncall.errors import ConfigError
    from fncall.server.agent_store import AgentDefinition

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"Cannot read the agent spec file {str(path)!r}: {error}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise AgentSpecError(
            [("", f"{path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {error}")]
        ) from None
    if llm is not None and isinstance(data, dict):
        data = {**data, "llm": {**(data.get("llm") or {}), "spec": llm}}
    return AgentDefinition.from_request(data)


def _from_spec(spec: str) -> LLM:
    from fncall.llms.spec import from_spec

    return from_spec(spec)


def _print_event(event: RunEvent) -> None:
    """One line per step, on stderr, so stdout stays the answer alone."""
    from fncall.agents.events import PausedEvent
    from fncall.types import ErrorEvent, LLMResponseEvent, ToolCallEvent, ToolResultEvent

    if isinstance(event, LLMResponseEvent):
        message = event.completion.message
        what = ", ".join(call.name for call in message.tool_calls) or repr((message.content or "")[:80])
        line = f"[cyan]step {event.step}[/] llm {event.duration_s:.2f}s -> {escape(what)}"
    elif isinstance(event, ToolCallEvent):
        line = f"  [yellow]call[/] {escape(event.call.name)}({escape(event.call.arguments_json())})"
    elif isinstance(event, ToolResultEvent):
        colour = "red" if event.result.is_error else "green"
        line = f"  [{colour}]result[/] {escape(event.result.name)}: {escape(event.result.content[:200])}"
    elif isinstance(event, ErrorEvent):
        line = f"  [red]{escape(event.kind)}[/]: {escape(event.message)}"
    elif isinstance(event, PausedEvent):
        line = f"  [magenta]paused[/]: {len(event.pending)} call(s) waiting"
    else:
        return
    _err.print(line, highlight=False)


# ------------------------------------------------------------------------------------------ memory


async def memory_show(memory_id: str, *, database_url: str | None = None, traces: bool = True) -> int:
    """Print a conversation: each turn's input, status and answer, and (with `traces`) its steps."""
    from fncall.memory import MemoryNotFoundError, MemoryStore

    store = await MemoryStore.open(database_url, recover=False)
    try:
        conversation = await store.get_conversation(memory_id)
        page = await store.list_interactions(memory_id, limit=1000)
        steps = {item.id: await store.list_traces(item.id) for item in page.items} if traces else {}
    except MemoryNotFoundError as exc:
        _err.print(f"[bold red]error:[/] {escape(str(exc))}")
        return EXIT_ERROR
    finally:
        await store.close()
    title = f" {conversation.name}" if conversation.name else ""
    _out.print(f"[bold]memory {conversation.memory_id}[/]{escape(title)}", highlight=False)
    _out.print(
        f"agent: {conversation.agent_id or '-'}  created: {conversation.created_at:%Y-%m-%d %H:%M:%S}Z"
    )
    for number, item in enumerate(page.items, start=1):
        outcome = f", {item.outcome}" if item.outcome else ""
        _out.print(f"\n[bold]#{number}[/] {item.id} [{item.status}{outcome}]", highlight=False)
        _out.print(f"  user: {escape(item.input)}", highlight=False)
        if item.response is not None:
            _out.print(f"  assistant: {escape(item.response)}", highlight=False)
        if item.error:
            _out.print(f"  [red]error:[/] {escape(item.error)}", highlight=False)
        for trace in steps.get(item.id, []):
            flag = " [red](error)[/]" if trace.is_error else ""
            _out.print(
                f"    {trace.trace_number}. {escape(trace.origin)}{flag} {trace.duration_s * 1000:.0f}ms "
                f"in: {escape(_preview(trace.input))} out: {escape(_preview(trace.output))}",
                highlight=False,
            )
    return EXIT_ANSWERED


@memory_app.command("show")
def memory_show_command(
    memory_id: Annotated[str, typer.Argument(help="The conversation's memory_id.")],
    database_url: DatabaseOption = None,
    traces: Annotated[bool, typer.Option("--traces/--no-traces", help="Show each turn's steps.")] = True,
) -> None:
    """Show a conversation: its turns, their answers and their traces."""
    raise typer.Exit(code=asyncio.run(memory_show(memory_id, database_url=database_url, traces=traces)))


async def memory_list(*, database_url: str | None = None, limit: int = 20) -> int:
    """Print the newest conversations, one a line."""
    from fncall.memory import MemoryStore

    store = await MemoryStore.open(database_url, recover=False)
    try:
        page = await store.list_conversations(limit=limit)
    finally:
        await store.close()
    for conversation in page.items:
        _out.print(
            f"{conversation.memory_id}  {conversation.updated_at:%Y-%m-%d %H:%M:%S}Z  "
            f"{conversation.agent_id or '-'}  {escape(conversation.name)}",
            highlight=False,
        )
    return EXIT_ANSWERED


@memory_app.command("list")
def memory_list_command(
    database_url: DatabaseOption = None,
    limit: Annotated[int, typer.Option(help="How many conversations.")] = 20,
) -> None:
    """List the newest conversations."""
    raise typer.Exit(code=asyncio.run(memory_list(database_url=database_url, limit=limit)))


def _preview(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


__all__ = [
    "agent_app",
    "agent_run",
    "memory_app",
    "memory_list",
    "memory_show",
    "serve",
    "serve_command",
]
