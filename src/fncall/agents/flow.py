"""Flow agents: a fixed sequence of tool calls with templated arguments, and an optional closing LLM step.

No model decides anything until the end: each step names a tool and its arguments, whose string values are
Jinja2 templates (sandboxed) over the run input, the flow's parameters and the outputs of earlier steps. A
template that is one expression, like `{{ steps.rate.data.value }}`, keeps its value's type, so numbers stay
numbers and the tool's schema accepts them. A flow emits the same agent events as the function-calling loop
and returns a RunResult.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateError, Undefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fncall.agents.result import Outcome, RunResult, Step
from fncall.agents.runner import RunInput, RunStream
from fncall.errors import LLMError
from fncall.llms.base import LLM, StreamAssembler
from fncall.tools import ToolExecutor, ToolRegistry
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
    TextDeltaEvent,
    ToolCall,
    ToolCallEvent,
    ToolResult,
    ToolResultEvent,
    Usage,
)

FlowOutcome = Outcome | Literal["tool_error"]
"""A flow ends like any run, or with `tool_error` when a step failed and its `on_error` is `stop`."""

_STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expression>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)


def _to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


_ENVIRONMENT = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_ENVIRONMENT.filters["json"] = _to_json


class FlowStep(BaseModel):
    """One step of a flow: the tool to call, its arguments (string values are templates), and what a failure
    does: `stop` ends the flow with outcome `tool_error`, `continue` goes on (later steps see `is_error`)."""

    model_config = ConfigDict(extra="forbid")

    tool: str = Field(min_length=1)
    name: str | None = Field(
        default=None, description="How later templates refer to it; the tool's name if unset."
    )
    arguments: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["stop", "continue"] = "stop"

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        if value is not None and not _STEP_NAME.match(value):
            raise ValueError(
                f"a step name must be letters, digits and '_' (not starting with a digit), not {value!r}, "
                "so templates can write steps.<name>"
            )
        return value

    @property
    def key(self) -> str:
        """The name templates use for this step's output."""
        return self.name or self.tool


def flow_problems(
    steps: Sequence[FlowStep], tool_names: Sequence[str] | None, answer_prompt: str | None = None
) -> list[str]:
    """Every reason the steps cannot run, each naming its field (`steps[1].arguments.amount: ...`):
    duplicate step names, unknown tools, template syntax errors, and references to steps that do not run
    before the one that uses them. `tool_names` None skips the tool check."""
    problems: list[str] = []
    seen: list[str] = []
    all_keys = [step.key for step in steps]
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        if step.key in seen:
            problems.append(
                f"{where}.name: another step is already called {step.key!r}; give this step its own name "
                "so templates can tell them apart."
            )
        if tool_names is not None and step.tool not in tool_names:
            offered = ", ".join(tool_names) or "none"
            problems.append(f"{where}.tool: unknown tool {step.tool!r}; the agent's tools are: {offered}.")
        for path, template in _templates(step.arguments, f"{where}.arguments"):
            problems.extend(_reference_problems(template, path, seen, all_keys, step.key))
        seen.append(step.key)
    if answer_prompt is not None:
        problems.extend(_reference_problems(answer_prompt, "answer_prompt", seen, all_keys, None))
    return problems


def _templates(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)] if "{{" in value or "{%" in value else []
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _templates(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _templates(item, f"{path}[{i}]")]
    return []


def _reference_problems(
    template: str, path: str, earlier: list[str], all_keys: list[str], own_key: str | None
) -> list[str]:
    try:
        tree = _ENVIRONMENT.parse(template)
    except TemplateError as error:
        return [f"{path}: the template does not parse: {error}"]
    problems = []
    for name in sorted(referenced_steps(tree)):
        if name in earlier:
            continue
        if name == own_key:
            problems.append(f"{path}: refers to its own step {name!r}; a step can only use earlier outputs.")
        elif name in all_keys:
            problems.append(
                f"{path}: refers to step {name!r}, which runs later; a step can only use earlier outputs."
            )
        else:
            known = ", ".join(earlier) or "none yet"
            problems.append(f"{path}: refers to an unknown step {name!r} (steps before it: {known}).")
    return problems


def referenced_steps(tree: nodes.Template) -> set[str]:
    """The step names a parsed template reads as `steps.<name>` or `steps["<name>"]`."""
    names: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node.node, nodes.Name) and node.node.name == "steps":
            if isinstance(node, nodes.Getattr):
                names.add(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                names.add(node.arg.value)
    return names


class FlowAgent(BaseModel):
    """A flow: tools, the steps that call them in order, and optionally an LLM that writes the answer from
    `answer_prompt` (a template over the same context as the arguments). Without it the last successful
    step's output is the answer. `parameters` are the defaults of `{{ parameters.<name> }}`."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    name: str
    description: str = ""
    tools: ToolRegistry
    steps: list[FlowStep] = Field(min_length=1)
    llm: LLM | None = None
    system_prompt: str = ""
    answer_prompt: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    params: GenerationParams = Field(default_factory=GenerationParams)
    timeout_s: float | None = Field(default=None, gt=0)
    tool_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("tools", mode="before")
    @classmethod
    def _as_registry(cls, value: Any) -> Any:
        if isinstance(value, ToolRegistry):
            return value
        if isinstance(value, Sequence) and not isinstance(value, str):
            return ToolRegistry(list(value))
        return value

    @model_validator(mode="after")
    def _check_steps(self) -> FlowAgent:
        problems = flow_problems(self.steps, self.tools.names(), self.answer_prompt)
        if self.answer_prompt is not None and self.llm is None:
            problems.append("llm: an answer_prompt needs an llm to write the answer.")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class FlowRunResult(RunResult):
    """A RunResult whose outcome may also be `tool_error`."""

    outcome: FlowOutcome  # type: ignore[assignment]


@dataclass
class _FlowState:
    agent: FlowAgent
    messages: list[Message]
    context: dict[str, Any]
    chat: list[Message]
    steps: list[Step] = field(default_factory=list)
    usage_prompt: int = 0
    usage_completion: int = 0
    outcome: FlowOutcome | None = None
    final_answer: str = ""
    error: str | None = None
    last_output: str | None = None
    started: float = field(default_factory=time.perf_counter)
    deadline: float | None = None
    result: FlowRunResult | None = None

    def time_is_up(self) -> bool:
        return self.deadline is not None and asyncio.get_running_loop().time() >= self.deadline


class FlowRunner:
    """Runs flow agents; holds no state of its own."""

    async def run(
        self,
        agent: FlowAgent,
        input: RunInput,
        *,
        history: Sequence[Message] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> FlowRunResult:
        """Run the flow on `input`; `parameters` override the agent's for this run."""
        events = self._start(agent, input, history, parameters, streaming=False)
        async for _ in events:
            pass
        return events.result

    def stream(
        self,
        agent: FlowAgent,
        input: RunInput,
        *,
        history: Sequence[Message] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> RunStream:
        """Run the flow, yielding its events; the answer step asks the LLM through its `stream()`."""
        return self._start(agent, input, history, parameters, streaming=True)

    def _start(
        self,
        agent: FlowAgent,
        input: RunInput,
        history: Sequence[Message] | None,
        parameters: dict[str, Any] | None,
        *,
        streaming: bool,
    ) -> RunStream:
        state = _initial_state(agent, input, history, parameters)
        return RunStream(self._drive(state, streaming), state)

    async def _drive(self, state: _FlowState, streaming: bool) -> AsyncGenerator[AgentEvent, None]:
        agent = state.agent
        if agent.timeout_s is not None:
            state.deadline = asyncio.get_running_loop().time() + agent.timeout_s
        executor = ToolExecutor(agent.tools, default_timeout_s=agent.tool_timeout_s)
        index = 0
        for index, flow_step in enumerate(agent.steps, start=1):
            if state.time_is_up():
                _stop_for_time(state)
                break
            yield StepStartedEvent(step=index)
            async for event in self._tool_step(state, executor, flow_step, index):
                yield event
            if state.outcome is not None:
                break
        if state.outcome is None:
            if agent.answer_prompt is not None and agent.llm is not None:
                async for event in self._answer_step(state, index + 1, streaming):
                    yield event
            else:
                state.outcome = "answered"
                state.final_answer = state.last_output or ""
        if state.outcome == "answered":
            state.messages.append(Message.assistant(state.final_answer))
        else:
            yield ErrorEvent(message=state.final_answer, kind=state.outcome or "error", step=index or None)
        state.result = _result(state)
        yield FinalAnswerEvent(text=state.final_answer, outcome=state.result.outcome)

    async def _tool_step(
        self, state: _FlowState, executor: ToolExecutor, flow_step: FlowStep, index: int
    ) -> AsyncGenerator[AgentEvent, None]:
        started_at = datetime.now(UTC)
        clock = time.perf_counter()
        try:
            arguments = render_arguments(flow_step.arguments, state.context)
        except Exception as error:  # a template expression can raise anything (1/0, a bad filter call)
            call = ToolCall(name=flow_step.tool)
            yield ToolCallEvent(step=index, call=call)
            content = f"Error: could not fill in the arguments of step {flow_step.key!r}: {error}"
            result = ToolResult(call_id=call.id, name=call.name, content=content, is_error=True)
        else:
            call = ToolCall(name=flow_step.tool, arguments=arguments)
            yield ToolCallEvent(step=index, call=call)
            result = await _run_call(state, executor, call)
        duration_s = time.perf_counter() - clock
        state.messages += [Message.assistant(tool_calls=[call]), Message.tool(result)]
        state.steps.append(
            Step(
                index=index,
                kind="tool",
                started_at=started_at,
                duration_s=duration_s,
                call=call,
                result=result,
            )
        )
        yield ToolResultEvent(step=index, result=result, duration_s=duration_s)
        state.context["steps"][flow_step.key] = step_output(result)
        if not result.is_error:
            state.last_output = result.content
        elif state.time_is_up():
            _stop_for_time(state)
        elif flow_step.on_error == "stop":
            state.outcome = "tool_error"
            state.error = result.content
            state.final_answer = (
                f"The flow {state.agent.name} stopped at step {index} ({flow_step.key}) because the tool "
                f"{flow_step.tool} failed: {result.content}"
            )

    async def _answer_step(
        self, state: _FlowState, index: int, streaming: bool
    ) -> AsyncGenerator[AgentEvent, None]:
        agent = state.agent
        assert agent.llm is not None and agent.answer_prompt is not None
        yield StepStartedEvent(step=index)
        started_at = datetime.now(UTC)
        clock = time.perf_counter()
        completion: Completion | None = None
        failure: str | None = None
        try:
            prompt = _ENVIRONMENT.from_string(agent.answer_prompt).render(state.context)
            messages = [*_system(agent), *state.chat, Message.user(prompt)]
            async with asyncio.timeout_at(state.deadline):
                if streaming:
                    assembler = _Collector()
                    async for event in agent.llm.stream(messages, [], "none", agent.params):
                        if isinstance(event, FinishEvent):
                            assembler.finished = event.completion
                            break
                        assembler.add(event)
                        if isinstance(event, TextDeltaEvent) and event.text:
                            yield AgentTextDeltaEvent(step=index, text=event.text)
                    completion = assembler.completion()
                else:
                    completion = await agent.llm.complete(messages, [], "none", agent.params)
        except TimeoutError:
            failure = "the run's time limit ran out during the answer step"
        except TemplateError as error:
            failure = f"the answer_prompt could not be rendered: {error}"
        except LLMError as error:
            failure = str(error) or type(error).__name__
        except Exception as error:  # a backend bug must end the flow with an outcome, not a crash
            failure = f"{type(error).__name__}: {error}"
        duration_s = time.perf_counter() - clock
        state.steps.append(
            Step(
                index=index,
                kind="llm",
                started_at=started_at,
                duration_s=duration_s,
                completion=completion,
                error=failure,
            )
        )
        if completion is None or failure is not None:
            if state.time_is_up():
                _stop_for_time(state)
            else:
                state.outcome = "llm_error"
                state.final_answer = f"The language model failed, so the flow has no answer: {failure}"
            state.error = failure
            return
        state.usage_prompt += completion.usage.prompt_tokens
        state.usage_completion += completion.usage.completion_tokens
        yield LLMResponseEvent(step=index, completion=completion, duration_s=duration_s)
        state.outcome = "answered"
        state.final_answer = completion.message.text.strip()


class _Collector(StreamAssembler):
    def __init__(self) -> None:
        super().__init__()
        self.finished: Completion | None = None

    def completion(self) -> Completion:
        return self.finished or Completion(message=self.message())


async def _run_call(state: _FlowState, executor: ToolExecutor, call: ToolCall) -> ToolResult:
    try:
        async with asyncio.timeout_at(state.deadline):
            return await executor.run_call(call)
    except TimeoutError:
        message = f"Cancelled: the flow's time limit ran out while {call.name} was running."
        return ToolResult(call_id=call.id, name=call.name, content=message, is_error=True)


def _stop_for_time(state: _FlowState) -> None:
    state.outcome = "timeout"
    state.error = state.error or "time limit"
    state.final_answer = f"The flow {state.agent.name} ran out of time ({state.agent.timeout_s:g} s)."


def render_arguments(arguments: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The arguments with every string template rendered against `context`; see the module docstring."""
    rendered = _render_value(arguments, context)
    assert isinstance(rendered, dict)
    return rendered


def _render_value(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {key: _render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_value(item, context) for item in value]
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    single = _SINGLE_EXPRESSION.match(value)
    if single is not None:
        result = _ENVIRONMENT.compile_expression(single["expression"], undefined_to_none=False)(**context)
        if isinstance(result, Undefined):
            str(result)  # raises UndefinedError with Jinja's own message
        return result
    return _ENVIRONMENT.from_string(value).render(context)


def step_output(result: ToolResult) -> dict[str, Any]:
    """What templates see of a step: `output` (the text), `data` (parsed JSON, when it is) and `is_error`."""
    data = None if result.is_error else result.data
    if isinstance(data, str):
        with contextlib.suppress(json.JSONDecodeError):
            data = json.loads(data)
    return {"output": result.content, "data": data, "is_error": result.is_error}


def _system(agent: FlowAgent) -> list[Message]:
    return [Message.system(agent.system_prompt)] if agent.system_prompt.strip() else []


def _initial_state(
    agent: FlowAgent, input: RunInput, history: Sequence[Message] | None, parameters: dict[str, Any] | None
) -> _FlowState:
    new_messages = [Message.user(input)] if isinstance(input, str) else list(input)
    earlier = [m for m in (history or []) if m.role != "system"]
    users = [m for m in new_messages if m.role == "user"]
    input_text = users[-1].text if users else ""
    chat = [m for m in earlier + new_messages[:-1] if m.role in ("user", "assistant") and m.text.strip()]
    context: dict[str, Any] = {
        "input": input_text,
        "parameters": {**agent.parameters, **(parameters or {})},
        "steps": {},
        "history": [{"role": m.role, "content": m.text} for m in chat],
    }
    messages = [*_system(agent), *earlier, *[m for m in new_messages if m.role != "system"]]
    return _FlowState(agent=agent, messages=messages, context=context, chat=chat)


def _result(state: _FlowState) -> FlowRunResult:
    return FlowRunResult(
        agent_name=state.agent.name,
        final_answer=state.final_answer,
        outcome=state.outcome or "answered",
        messages=list(state.messages),
        steps=list(state.steps),
        usage=Usage(prompt_tokens=state.usage_prompt, completion_tokens=state.usage_completion),
        duration_s=time.perf_counter() - state.started,
        error=state.error,
    )


_DEFAULT_FLOW_RUNNER = FlowRunner()


async def run_flow(
    agent: FlowAgent,
    input: RunInput,
    *,
    history: Sequence[Message] | None = None,
    parameters: dict[str, Any] | None = None,
) -> FlowRunResult:
    """Run a flow agent with the default FlowRunner."""
    return await _DEFAULT_FLOW_RUNNER.run(agent, input, history=history, parameters=parameters)


def stream_flow(
    agent: FlowAgent,
    input: RunInput,
    *,
    history: Sequence[Message] | None = None,
    parameters: dict[str, Any] | None = None,
) -> RunStream:
    """Stream the events of a flow run with the default FlowRunner."""
    return _DEFAULT_FLOW_RUNNER.stream(agent, input, history=history, parameters=parameters)


__all__ = [
    "FlowAgent",
    "FlowOutcome",
    "FlowRunResult",
    "FlowRunner",
    "FlowStep",
    "flow_problems",
    "referenced_steps",
    "render_arguments",
    "run_flow",
    "step_output",
    "stream_flow",
]
