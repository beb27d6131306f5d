"""`fncall client`: the Triton tutorial's command-line client, on any backend.

The tutorial's `client.py` sends a prompt and the stock tools (get_current_stock_price, get_company_news) to
Hermes-2-Pro on Triton, runs the calls the model makes, feeds the results back, and prints each step and
then `RESPONSE: ...`. This does the same with fncall's stock assistant and function-calling runner, on a
Triton server (`--url`) or any backend spec (`--llm`). The steps, streamed text and verbose prompts go to
stderr, so stdout holds the `RESPONSE:` line alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from fncall.errors import ConfigError, FncallError
from fncall.llms.base import LLM, BaseLLM
from fncall.types import (
    AgentEvent,
    AgentTextDeltaEvent,
    Completion,
    ErrorEvent,
    FinalAnswerEvent,
    FinishEvent,
    GenerationParams,
    LLMResponseEvent,
    Message,
    StepStartedEvent,
    StreamEvent,
    ToolCallEvent,
    ToolChoice,
    ToolResultEvent,
    ToolSpec,
)

if TYPE_CHECKING:  # the agent runtime and backends are imported when the command runs, not by `fncall --help`
    from fncall.agents import Agent, Runner, Step

DEFAULT_OUTPUT_LEN = 100  # the tutorial client's default for --output-len
DEFAULT_MODEL = "ensemble"  # the Triton model of the tutorial (the TensorRT-LLM ensemble)
DEFAULT_LLM_ENV = "FNCALL_LLM"
_RESULT_PREVIEW_CHARS = 500


def run_client(
    prompt: str,
    *,
    llm_spec: str | None = None,
    url: str | None = None,
    model_name: str = DEFAULT_MODEL,
    streaming: bool = False,
    output_len: int = DEFAULT_OUTPUT_LEN,
    verbose: bool = False,
    temperature: float | None = None,
    max_steps: int = 10,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Runs the stock assistant on `prompt`, printing its steps and `RESPONSE: ...`; returns the exit
    code (0 answered, 2 the run ended without an answer). `url` picks a Triton server, otherwise
    `llm_spec` (default $FNCALL_LLM or the embedded `local:` model). Raises ConfigError for an unusable
    backend choice."""
    from fncall.agents import stock_assistant

    printer = _StepPrinter(out or sys.stdout, err or sys.stderr, streaming=streaming)
    llm = _choose_llm(llm_spec, url, model_name, printer if verbose else None)
    params = GenerationParams(max_tokens=output_len, temperature=temperature)
    agent = stock_assistant(llm, params=params, max_steps=max_steps)
    return asyncio.run(_run(agent, prompt, printer, streaming))


async def _run(agent: Agent, prompt: str, printer: _StepPrinter, streaming: bool) -> int:
    from fncall.agents import Runner

    if streaming:  # the model is asked through stream(): its text is shown as it arrives
        outcome = "answered"
        async for event in Runner().stream(agent, prompt):
            printer.show(event)
            if isinstance(event, FinalAnswerEvent):
                outcome = event.outcome
        return 0 if outcome == "answered" else 2
    result = await _printing_runner(printer).run(agent, prompt)
    if result.outcome != "answered":
        printer.show(
            ErrorEvent(message=result.error or f"The run ended: {result.outcome}.", kind=result.outcome)
        )
    printer.show(FinalAnswerEvent(text=result.final_answer, outcome=result.outcome))
    return 0 if result.outcome == "answered" else 2


def _printing_runner(printer: _StepPrinter) -> Runner:
    """The function-calling runner, printing each step as soon as it is recorded (runs without streaming)."""
    from fncall.agents import Runner, RunState

    class _PrintingRunner(Runner):
        async def on_step_finished(self, state: RunState, step: Step) -> None:
            for event in _step_events(step):
                printer.show(event)

    return _PrintingRunner()


def _step_events(step: Step) -> list[AgentEvent]:
    """The events a streamed run would have shown for this step."""
    if step.kind == "tool" and step.call is not None and step.result is not None:
        return [
            ToolCallEvent(step=step.index, call=step.call),
            ToolResultEvent(step=step.index, result=step.result, duration_s=step.duration_s),
        ]
    events: list[AgentEvent] = [StepStartedEvent(step=step.index)]
    if step.completion is not None:
        events.append(
            LLMResponseEvent(step=step.index, completion=step.completion, duration_s=step.duration_s)
        )
    elif step.error:
        events.append(ErrorEvent(message=step.error, kind="llm_error", step=step.index))
    return events


def _choose_llm(llm_spec: str | None, url: str | None, model_name: str, printer: _StepPrinter | None) -> LLM:
    if url and llm_spec:
        raise ConfigError("Give either --url (a Triton server) or --llm (any backend spec), not both.")
    from fncall.llms import from_spec
    from fncall.llms.triton import TritonLLM

    llm: LLM = TritonLLM(url, model_name) if url else from_spec(llm_spec or _default_spec())
    if printer is None:
        return llm
    if isinstance(llm, TritonLLM):  # the raw prompt and output are the interesting part of a text model
        llm.on_prompt = printer.show_prompt
        llm.on_output = printer.show_raw_output
        return llm
    return _EchoingLLM(llm, printer)


def _default_spec() -> str:
    return os.environ.get(DEFAULT_LLM_ENV) or "local:"


class _StepPrinter:
    """Prints a run the way the tutorial's client does: each call and its result, then the response."""

    def __init__(self, out: TextIO, err: TextIO, *, streaming: bool) -> None:
        self._out = out
        self._err = err
        self._streaming = streaming
        self._mid_line = False  # streamed text was written without a newline yet

    def show(self, event: object) -> None:
        if isinstance(event, AgentTextDeltaEvent):
            self._err.write(event.text)
            self._err.flush()
            self._mid_line = not event.text.endswith("\n")
            return
        self._end_streamed_line()
        if isinstance(event, StepStartedEvent):
            self._line(f"=== step {event.step} ===")
        elif isinstance(event, LLMResponseEvent):
            message = event.completion.message
            if message.tool_calls and message.text.strip() and not self._streaming:
                self._line(message.text.strip())  # what the model said along with its calls
            self._line(_describe_response(event))
        elif isinstance(event, ToolCallEvent):
            arguments = event.call.arguments_json()
            self._line(f"Executing function: {event.call.name}({arguments})")
        elif isinstance(event, ToolResultEvent):
            self._line(f"Function response: {_preview(event.result.content)}")
        elif isinstance(event, ErrorEvent):
            self._line(f"[ERROR] {event.message}")
        elif isinstance(event, FinalAnswerEvent):
            print(f"RESPONSE: {event.text}", file=self._out, flush=True)

    def show_prompt(self, prompt: str) -> None:
        self._end_streamed_line()
        self._line(f"--- prompt ---\n{prompt}\n--- end of prompt ---")

    def show_raw_output(self, text: str) -> None:
        self._end_streamed_line()
        self._line(f"--- raw output ---\n{text}\n--- end of raw output ---")

    def show_request(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> None:
        self._end_streamed_line()
        lines = [
            f"--- request: {len(messages)} messages, tools: {', '.join(t.name for t in tools) or 'none'} ---"
        ]
        for message in messages:
            calls = "".join(f" {call.name}({call.arguments_json()})" for call in message.tool_calls)
            lines.append(f"[{message.role}] {message.text}{calls}")
        self._line("\n".join(lines))

    def show_completion(self, completion: Completion) -> None:
        self._end_streamed_line()
        message = completion.message
        calls = [{"name": call.name, "arguments": call.arguments} for call in message.tool_calls]
        body = message.text + (f"\ntool calls: {json.dumps(calls, ensure_ascii=False)}" if calls else "")
        self._line(f"--- raw output ({completion.finish_reason}) ---\n{body}\n--- end of raw output ---")

    def _line(self, text: str) -> None:
        print(text, file=self._err, flush=True)

    def _end_streamed_line(self) -> None:
        if self._mid_line:
            self._err.write("\n")
            self._mid_line = False


class _EchoingLLM(BaseLLM):
    """Wraps any backend to print what it is asked and what it answers (`--verbose`)."""

    def __init__(self, inner: LLM, printer: _StepPrinter) -> None:
        self.inner = inner
        self.model = inner.model
        self._printer = printer

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> Completion:
        self._printer.show_request(messages, tools)
        completion = await self.inner.complete(messages, tools, tool_choice, params)
        self._printer.show_completion(completion)
        return completion

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        self._printer.show_request(messages, tools)
        async for event in self.inner.stream(messages, tools, tool_choice, params):
            if isinstance(event, FinishEvent):
                self._printer.show_completion(event.completion)
            yield event


def _describe_response(event: LLMResponseEvent) -> str:
    message = event.completion.message
    usage = event.completion.usage
    tokens = f" ({usage.prompt_tokens}+{usage.completion_tokens} tok)" if usage.total_tokens else ""
    chose = ", ".join(call.name for call in message.tool_calls) or "answer"
    return f"llm {event.duration_s:.2f}s{tokens} -> {chose}"


def _preview(text: str) -> str:
    return text if len(text) <= _RESULT_PREVIEW_CHARS else text[:_RESULT_PREVIEW_CHARS] + "..."


# ------------------------------------------------------------------------------------------ command


def client_command(
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What to ask the stock assistant.")],
    streaming: Annotated[
        bool, typer.Option("--streaming", "-S", help="Stream the model's text as it is generated.")
    ] = False,
    output_len: Annotated[
        int, typer.Option("--output-len", "-o", min=1, help="Most tokens the model may write per step.")
    ] = DEFAULT_OUTPUT_LEN,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print prompts and raw model outputs.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option("--url", "-u", help="A Triton server's HTTP URL, e.g. http://127.0.0.1:8000."),
    ] = None,
    llm: Annotated[
        str | None,
        typer.Option("--llm", help="Any backend spec instead of --url (default: $FNCALL_LLM or local:)."),
    ] = None,
    model_name: Annotated[
        str, typer.Option("--model-name", help="The Triton model: ensemble or tensorrt_llm_bls.")
    ] = DEFAULT_MODEL,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (backend default).")] = None,
    max_steps: Annotated[
        int, typer.Option(min=1, help="Budget: LLM steps before the run is summarised.")
    ] = 10,
) -> None:
    """Ask the stock assistant (stock price, company news) and print each step, like the Triton
    tutorial's client."""
    try:
        code = run_client(
            prompt,
            llm_spec=llm,
            url=url,
            model_name=model_name,
            streaming=streaming,
            output_len=output_len,
            verbose=verbose,
            temperature=temperature,
            max_steps=max_steps,
        )
    except FncallError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from error
    raise typer.Exit(code=code)
