"""OpenTelemetry spans for agent runs, LLM calls and tool calls, after the GenAI semantic conventions.

    telemetry = instrument()                     # the global tracer provider, or pass one
    result = await telemetry.runner().run(agent, "How much is 42 USD in CAD?")

A run gives one `invoke_agent {agent}` span with a `chat {model}` child per LLM call and an
`execute_tool {tool}` child per executed tool call. Nothing in the runner knows about tracing: the runner
returned by `Telemetry.runner` runs a copy of the agent whose LLM is wrapped (`TracedLLM`) and executes tools
with a `TracedToolExecutor`. OpenTelemetry is optional (extra `otel`): this module imports without it, and
`instrument()` then says how to install it.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from fncall.agents.agent import Agent
from fncall.agents.runner import Runner, RunStream
from fncall.errors import ConfigError
from fncall.llms.base import LLM, BaseLLM, StreamAssembler
from fncall.tools import Tool, ToolExecutor, ToolRegistry
from fncall.types import (
    Completion,
    FinishEvent,
    GenerationParams,
    Message,
    StreamEvent,
    ToolCall,
    ToolChoice,
    ToolResult,
    ToolSpec,
)

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the `otel` extra is not installed; instrument() explains
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from fncall.agents.result import RunResult

INSTALL_HINT = "pip install 'fncall[otel]'"
TRACER_NAME = "fncall"

# GenAI semantic-convention attribute names (kept here: the semconv package marks them incubating).
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_SEED = "gen_ai.request.seed"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_DESCRIPTION = "gen_ai.tool.description"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"
ERROR_TYPE = "error.type"
RUN_OUTCOME = "fncall.run.outcome"

_FAILED_OUTCOMES = frozenset({"llm_error", "timeout"})
_STATUS_TEXT_CHARS = 200
_PROVIDERS_BY_MODULE = {
    "fncall.llms.openai_compat": "openai",
    "fncall.llms.anthropic": "anthropic",
    "fncall.llms.triton": "triton",
    "fncall.llms.local": "fncall.local",
}


def otel_available() -> bool:
    """Whether the OpenTelemetry API is installed."""
    return trace is not None


def instrument(tracer_provider: TracerProvider | None = None, *, capture_content: bool = False) -> Telemetry:
    """Tracing hooks that write to `tracer_provider` (default: the global one OpenTelemetry is set up with).

    `capture_content` adds tool arguments and results to tool spans; leave it off where they may hold
    personal data. Raises ConfigError when OpenTelemetry is not installed.
    """
    if trace is None:
        raise ConfigError(f"OpenTelemetry is not installed, so fncall cannot trace runs: {INSTALL_HINT}")
    tracer = trace.get_tracer(TRACER_NAME, _fncall_version(), tracer_provider=tracer_provider)
    return Telemetry(tracer, capture_content=capture_content)


class Telemetry:
    """Makes traced versions of fncall's parts, all writing spans through one tracer."""

    def __init__(self, tracer: Tracer, *, capture_content: bool = False) -> None:
        self.tracer = tracer
        self.capture_content = capture_content

    def llm(self, llm: LLM) -> TracedLLM:
        """`llm` with a `chat` span per call (an LLM that is already traced is not wrapped twice)."""
        if isinstance(llm, TracedLLM):
            return llm
        return TracedLLM(llm, self)

    def agent(self, agent: Agent) -> Agent:
        """A copy of `agent` whose LLM is traced."""
        if isinstance(agent.llm, TracedLLM):
            return agent
        return agent.model_copy(update={"llm": self.llm(agent.llm)})

    def tool_executor(self, tools: ToolRegistry | Iterable[Tool], **options: Any) -> TracedToolExecutor:
        """A ToolExecutor (same options) with an `execute_tool` span per call."""
        return TracedToolExecutor(tools, telemetry=self, **options)

    def runner(self, base: type[Runner] = Runner) -> Runner:
        """A runner of class `base` (Runner, ReactRunner ...) whose runs are traced."""
        if base is Runner:
            return TracedRunner(self)
        traced_class = type(f"Traced{base.__name__}", (TracedRunner, base), {})
        return traced_class(self)

    async def run(self, agent: Agent, input: str | Sequence[Message], **options: Any) -> RunResult:
        """Run `agent` with a traced Runner; options are Runner.run's (history, on_step ...)."""
        return await self.runner().run(agent, input, **options)


# ---------------------------------------------------------------------------------------------- agent


class TracedRunner(Runner):
    """A Runner whose runs are `invoke_agent` spans with the LLM and tool spans inside them.

    It overrides only the public entry points and the `tool_executor` hook, and calls `super()` for the
    rest, so it mixes with other runners: `class TracedReact(TracedRunner, ReactRunner)`.
    """

    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__()
        self.telemetry = telemetry

    async def run(self, agent: Agent, input: Any, **options: Any) -> RunResult:
        with self._agent_span(agent) as span:
            result = await super().run(self.telemetry.agent(agent), input, **options)
            _record_run(span, result)
            return result

    def stream(self, agent: Agent, input: Any, **options: Any) -> RunStream:
        inner = super().stream(self.telemetry.agent(agent), input, **options)  # raises before a span starts
        return _TracedRunStream(inner, self._start_agent_span(agent))

    async def resume(self, agent: Agent, state: Any, **options: Any) -> RunResult:
        with self._agent_span(agent) as span:
            result = await super().resume(self.telemetry.agent(agent), state, **options)
            _record_run(span, result)
            return result

    def resume_stream(self, agent: Agent, state: Any, **options: Any) -> RunStream:
        inner = super().resume_stream(self.telemetry.agent(agent), state, **options)
        return _TracedRunStream(inner, self._start_agent_span(agent))

    def tool_executor(self, agent: Agent) -> ToolExecutor:
        return self.telemetry.tool_executor(
            agent.tools, max_concurrency=agent.max_concurrency, default_timeout_s=agent.tool_timeout_s
        )

    def _agent_span(self, agent: Agent) -> Any:
        return self.telemetry.tracer.start_as_current_span(
            f"invoke_agent {agent.name}", kind=SpanKind.INTERNAL, attributes=_agent_attributes(agent)
        )

    def _start_agent_span(self, agent: Agent) -> Span:
        return self.telemetry.tracer.start_span(
            f"invoke_agent {agent.name}", kind=SpanKind.INTERNAL, attributes=_agent_attributes(agent)
        )


class _TracedRunStream(RunStream):
    """A RunStream that makes its run's span the current one while each event is produced, so the LLM and
    tool spans of a streamed run nest under it even though the consumer drives the run."""

    def __init__(self, inner: RunStream, span: Span) -> None:  # the inner stream holds the run's state
        self._inner = inner
        self._span = span
        self._ended = False

    async def __anext__(self) -> Any:
        token = otel_context.attach(trace.set_span_in_context(self._span))
        try:
            event = await self._inner.__anext__()
        except StopAsyncIteration:
            self._end(self._inner.result)
            raise
        except Exception as error:
            _record_exception(self._span, error)
            self._end(None)
            raise
        except BaseException:  # cancelled: the run did not end on its own
            self._span.set_attribute(RUN_OUTCOME, "cancelled")
            self._end(None)
            raise
        finally:
            otel_context.detach(token)
        return event

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._ended:
                self._span.set_attribute(RUN_OUTCOME, "closed")
                self._end(None)

    @property
    def result(self) -> RunResult:
        return self._inner.result

    def _end(self, result: RunResult | None) -> None:
        if self._ended:
            return
        self._ended = True
        if result is not None:
            _record_run(self._span, result)
        self._span.end()


def _agent_attributes(agent: Agent) -> dict[str, Any]:
    return {
        OPERATION_NAME: "invoke_agent",
        AGENT_NAME: agent.name,
        PROVIDER_NAME: _provider_name(agent.llm),
        REQUEST_MODEL: agent.llm.model,
    }


def _record_run(span: Span, result: RunResult) -> None:
    span.set_attribute(RUN_OUTCOME, result.outcome)
    span.set_attribute(USAGE_INPUT_TOKENS, result.usage.prompt_tokens)
    span.set_attribute(USAGE_OUTPUT_TOKENS, result.usage.completion_tokens)
    if result.outcome in _FAILED_OUTCOMES:
        span.set_attribute(ERROR_TYPE, result.outcome)
        span.set_status(Status(StatusCode.ERROR, _short(result.error or result.final_answer)))


# ------------------------------------------------------------------------------------------------ LLM


class TracedLLM(BaseLLM):
    """An LLM (any backend) whose `complete` and `stream` calls are `chat {model}` client spans."""

    def __init__(self, llm: LLM, telemetry: Telemetry) -> None:
        self.inner = llm
        self.model = llm.model
        self.telemetry = telemetry
        self.provider = _provider_name(llm)

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> Completion:
        with self.telemetry.tracer.start_as_current_span(
            f"chat {self.model}", kind=SpanKind.CLIENT, attributes=self._request_attributes(params)
        ) as span:
            try:
                completion = await self.inner.complete(messages, tools, tool_choice, params)
            except Exception as error:
                span.set_attribute(ERROR_TYPE, type(error).__qualname__)
                raise
            _record_completion(span, completion)
            return completion

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        span = self.telemetry.tracer.start_span(
            f"chat {self.model}", kind=SpanKind.CLIENT, attributes=self._request_attributes(params)
        )
        events = self.inner.stream(messages, tools, tool_choice, params)
        assembler = StreamAssembler()
        completion: Completion | None = None
        try:
            async for event in events:
                if isinstance(event, FinishEvent):
                    completion = event.completion
                else:
                    assembler.add(event)
                yield event
            if completion is None:  # a stream without a FinishEvent ended normally: assemble its completion
                message = assembler.message()
                completion = Completion(
                    message=message, finish_reason="tool_calls" if message.tool_calls else "stop"
                )
        except Exception as error:
            _record_exception(span, error)
            raise
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
            if completion is not None:
                _record_completion(span, completion)
            span.end()

    def _request_attributes(self, params: GenerationParams | None) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            OPERATION_NAME: "chat",
            PROVIDER_NAME: self.provider,
            REQUEST_MODEL: self.model,
        }
        if params is not None:
            for name, value in (
                (REQUEST_TEMPERATURE, params.temperature),
                (REQUEST_TOP_P, params.top_p),
                (REQUEST_MAX_TOKENS, params.max_tokens),
                (REQUEST_SEED, params.seed),
            ):
                if value is not None:
                    attributes[name] = value
        return attributes


def _record_completion(span: Span, completion: Completion) -> None:
    span.set_attribute(RESPONSE_FINISH_REASONS, [completion.finish_reason])
    span.set_attribute(USAGE_INPUT_TOKENS, completion.usage.prompt_tokens)
    span.set_attribute(USAGE_OUTPUT_TOKENS, completion.usage.completion_tokens)
    if completion.model:
        span.set_attribute(RESPONSE_MODEL, completion.model)


def _provider_name(llm: LLM) -> str:
    """The semconv provider name: the remote API's for known backends, else `fncall.<backend module>`."""
    if isinstance(llm, TracedLLM):
        return llm.provider
    module = type(llm).__module__
    if module in _PROVIDERS_BY_MODULE:
        return _PROVIDERS_BY_MODULE[module]
    return "fncall." + module.rsplit(".", 1)[-1]


# ---------------------------------------------------------------------------------------------- tools


class TracedToolExecutor(ToolExecutor):
    """A ToolExecutor whose calls are `execute_tool {tool}` spans; an error result sets the error status."""

    def __init__(
        self, registry: ToolRegistry | Iterable[Tool], *, telemetry: Telemetry, **options: Any
    ) -> None:
        super().__init__(registry, **options)
        self.telemetry = telemetry

    async def run_call(self, call: ToolCall) -> ToolResult:
        attributes: dict[str, Any] = {
            OPERATION_NAME: "execute_tool",
            TOOL_NAME: call.name,
            TOOL_CALL_ID: call.id,
            TOOL_TYPE: "function",
        }
        selected = self.registry.get(call.name)
        if selected is not None and selected.description:
            attributes[TOOL_DESCRIPTION] = selected.description
        if self.telemetry.capture_content:
            attributes[TOOL_CALL_ARGUMENTS] = call.arguments_json()
        with self.telemetry.tracer.start_as_current_span(
            f"execute_tool {call.name}", kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            result = await super().run_call(call)
            if self.telemetry.capture_content:
                span.set_attribute(TOOL_CALL_RESULT, result.content)
            if result.is_error:
                kind = result.data.get("error_kind") if isinstance(result.data, dict) else None
                span.set_attribute(ERROR_TYPE, str(kind or "tool_error"))
                span.set_status(Status(StatusCode.ERROR, _short(result.content)))
            return result


# -------------------------------------------------------------------------------------------- helpers


def _record_exception(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_attribute(ERROR_TYPE, type(error).__qualname__)
    span.set_status(Status(StatusCode.ERROR, _short(str(error) or type(error).__name__)))


def _short(text: str) -> str:
    return text if len(text) <= _STATUS_TEXT_CHARS else text[:_STATUS_TEXT_CHARS] + "..."


def _fncall_version() -> str | None:
    try:
        return importlib.metadata.version("fncall")
    except importlib.metadata.PackageNotFoundError:
        return None


__all__ = [
    "INSTALL_HINT",
    "Telemetry",
    "TracedLLM",
    "TracedRunner",
    "TracedToolExecutor",
    "instrument",
    "otel_available",
]
