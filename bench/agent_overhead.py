"""Benchmark 1: agent-loop overhead per step, fncall against four agent frameworks.

The same 3-step task everywhere: the model asks for `add(2, 3)`, then `add(5, 5)`, then answers. Each
framework gets a zero-latency fake model of its own kind (fncall's `Scripted`, a LangChain chat model,
an Agents SDK `Model`, pydantic-ai's `FunctionModel`, a smolagents `Model`) and an async tool (a sync one
for smolagents, which has no async path), so the time measured is the framework's own loop: building
requests, bookkeeping, tool dispatch and results. Agents are built once; a run is timed end to end and
divided by its 3 model steps.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.charts import bar_chart
from bench.context import BenchContext
from bench.report import Section, Table, package_version
from bench.stats import Spread, paired_ratios
from bench.task import ANSWER, INSTRUCTIONS, STEPS_PER_RUN, TASK, scripted_call

NAME = "agent_overhead"
TITLE = "1. Agent-loop overhead"

TARGET_FACTOR = 10.0


@dataclass
class FrameworkCase:
    """One framework ready to run the task: `run_once` returns the final answer; `tool_calls` counts."""

    name: str
    version: str
    run_once: Callable[[], Awaitable[str]] | Callable[[], str]
    is_async: bool
    counter: list[int]


# ---------------------------------------------------------------------------------------- fncall


def fncall_case() -> FrameworkCase:
    from fncall.agents import Agent, Runner
    from fncall.llms.scripted import Scripted, ScriptedRequest
    from fncall.types import ToolCall

    counter = [0]

    async def add(a: int, b: int) -> int:
        """Add two integers."""
        counter[0] += 1
        return a + b

    def respond(request: ScriptedRequest) -> ToolCall | str:
        seen = sum(1 for message in request.messages if message.role == "tool")
        arguments = scripted_call(seen)
        return ANSWER if arguments is None else ToolCall(name="add", arguments=arguments)

    llm = Scripted(respond)
    agent = Agent(name="bench", instructions=INSTRUCTIONS, llm=llm, tools=[add])
    runner = Runner()

    async def run_once() -> str:
        result = await runner.run(agent, TASK)
        llm.requests.clear()  # the backend records requests for tests; do not let them pile up
        return result.final_answer

    return FrameworkCase("fncall", package_version("fncall"), run_once, True, counter)


# ------------------------------------------------------------------------------------- LangGraph


def langgraph_case() -> FrameworkCase:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool as langchain_tool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_react_agent is deprecated in favour of langchain's
        from langgraph.prebuilt import create_react_agent

    counter = [0]

    @langchain_tool
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        counter[0] += 1
        return a + b

    class ScriptedChatModel(BaseChatModel):
        """A LangChain chat model answering from the script, natively async (no thread hop)."""

        @property
        def _llm_type(self) -> str:
            return "bench-scripted"

        def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
            return self

        def _reply(self, messages: list[BaseMessage]) -> ChatResult:
            seen = sum(1 for message in messages if isinstance(message, ToolMessage))
            arguments = scripted_call(seen)
            if arguments is None:
                message = AIMessage(content=ANSWER)
            else:
                call = {"name": "add", "args": arguments, "id": f"call_{seen}", "type": "tool_call"}
                message = AIMessage(content="", tool_calls=[call])
            return ChatResult(generations=[ChatGeneration(message=message)])

        def _generate(self, messages: list[BaseMessage], stop: Any = None, **kwargs: Any) -> ChatResult:
            return self._reply(messages)

        async def _agenerate(
            self, messages: list[BaseMessage], stop: Any = None, **kwargs: Any
        ) -> ChatResult:
            return self._reply(messages)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = create_react_agent(ScriptedChatModel(), [add], prompt=INSTRUCTIONS)

    async def run_once() -> str:
        state = await graph.ainvoke({"messages": [("user", TASK)]})
        return str(state["messages"][-1].content)

    return FrameworkCase("LangGraph", package_version("langgraph"), run_once, True, counter)


# ------------------------------------------------------------------------------ OpenAI Agents SDK


def openai_agents_case() -> FrameworkCase:
    from agents import Agent, ModelResponse, Runner, Usage, function_tool, set_tracing_disabled
    from agents.models.interface import Model
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    set_tracing_disabled(True)  # tracing would try to export spans to OpenAI's servers
    counter = [0]

    @function_tool
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        counter[0] += 1
        return a + b

    class ScriptedModel(Model):
        """An Agents SDK model answering from the script (the SDK's own ScriptedModel deep-copies every
        request for test assertions, which is test-double cost rather than loop cost)."""

        async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
            items = input if isinstance(input, list) else []
            seen = sum(1 for item in items if _item_type(item) == "function_call_output")
            arguments = scripted_call(seen)
            if arguments is None:
                text = ResponseOutputText(text=ANSWER, type="output_text", annotations=[])
                output: Any = ResponseOutputMessage(
                    id=f"msg_{seen}", type="message", role="assistant", status="completed", content=[text]
                )
            else:
                output = ResponseFunctionToolCall(
                    id=f"fc_{seen}",
                    call_id=f"call_{seen}",
                    type="function_call",
                    name="add",
                    arguments=f'{{"a": {arguments["a"]}, "b": {arguments["b"]}}}',
                )
            return ModelResponse(output=[output], usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("the benchmark does not stream")

    agent = Agent(name="bench", instructions=INSTRUCTIONS, model=ScriptedModel(), tools=[add])

    async def run_once() -> str:
        result = await Runner.run(agent, TASK)
        return str(result.final_output)

    return FrameworkCase("OpenAI Agents SDK", package_version("openai-agents"), run_once, True, counter)


def _item_type(item: Any) -> str | None:
    return item.get("type") if isinstance(item, dict) else getattr(item, "type", None)


# ------------------------------------------------------------------------------------ pydantic-ai


def pydantic_ai_case() -> FrameworkCase:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    counter = [0]

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen = sum(1 for message in messages for part in message.parts if isinstance(part, ToolReturnPart))
        arguments = scripted_call(seen)
        if arguments is None:
            return ModelResponse(parts=[TextPart(ANSWER)])
        return ModelResponse(parts=[ToolCallPart("add", arguments, tool_call_id=f"call_{seen}")])

    agent = Agent(FunctionModel(respond), instructions=INSTRUCTIONS)

    @agent.tool_plain
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        counter[0] += 1
        return a + b

    async def run_once() -> str:
        result = await agent.run(TASK)
        return str(result.output)

    return FrameworkCase("pydantic-ai", package_version("pydantic-ai-slim"), run_once, True, counter)


# ------------------------------------------------------------------------------------- smolagents


def smolagents_case() -> FrameworkCase:
    from smolagents import ChatMessage, LogLevel, Model, ToolCallingAgent, tool
    from smolagents.models import ChatMessageToolCall, ChatMessageToolCallFunction, MessageRole

    logging.getLogger("smolagents").setLevel(logging.ERROR)
    counter = [0]

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: The first integer.
            b: The second integer.
        """
        counter[0] += 1
        return a + b

    class ScriptedModel(Model):
        """A smolagents model answering from the script; its answer is a `final_answer` call, which is
        how ToolCallingAgent ends a run."""

        def generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> ChatMessage:
            seen = sum(1 for message in messages if _role(message) == MessageRole.TOOL_RESPONSE)
            arguments = scripted_call(seen)
            name, call_arguments = ("add", arguments) if arguments else ("final_answer", {"answer": ANSWER})
            call = ChatMessageToolCall(
                function=ChatMessageToolCallFunction(name=name, arguments=call_arguments),
                id=f"call_{seen}",
                type="function",
            )
            return ChatMessage(role=MessageRole.ASSISTANT, content="", tool_calls=[call])

    agent = ToolCallingAgent(tools=[add], model=ScriptedModel(), verbosity_level=LogLevel.OFF, max_steps=6)

    def run_once() -> str:
        return str(agent.run(TASK))

    return FrameworkCase("smolagents", package_version("smolagents"), run_once, False, counter)


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else getattr(message, "role", None)


CASE_BUILDERS: tuple[Callable[[], FrameworkCase], ...] = (
    fncall_case,
    langgraph_case,
    openai_agents_case,
    pydantic_ai_case,
    smolagents_case,
)


# ---------------------------------------------------------------------------------------- timing


def check_case(case: FrameworkCase) -> None:
    """Run the task once and make sure the framework really did 2 tool calls and answered."""
    before = case.counter[0]
    answer = _run_batch(case, 1)[1]
    calls = case.counter[0] - before
    if calls != 2 or ANSWER not in answer:
        raise RuntimeError(f"{case.name} did not run the task: {calls} tool calls, answer {answer!r}")


def time_batch(case: FrameworkCase, runs: int) -> float:
    """Seconds for `runs` back-to-back runs."""
    return _run_batch(case, runs)[0]


def _run_batch(case: FrameworkCase, runs: int) -> tuple[float, str]:
    gc.collect()
    if case.is_async:

        async def batch() -> tuple[float, str]:
            answer = ""
            started = time.perf_counter()
            for _ in range(runs):
                answer = await case.run_once()  # type: ignore[misc]
            return time.perf_counter() - started, answer

        return asyncio.run(batch())
    answer = ""
    started = time.perf_counter()
    for _ in range(runs):
        answer = case.run_once()  # type: ignore[assignment]
    return time.perf_counter() - started, answer


def run(context: BenchContext) -> Section:
    cases = [build() for build in CASE_BUILDERS]
    for case in cases:
        check_case(case)
    # Size each framework's batch to about `batch_s` seconds so fast and slow ones are timed equally well.
    batch_s = 0.25 if context.quick else 1.0
    runs_per_batch = {}
    for case in cases:
        probe = time_batch(case, 10) / 10
        runs_per_batch[case.name] = max(10, int(batch_s / max(probe, 1e-6)))
    repeats = 5 if context.quick else 7
    per_step_s: dict[str, list[float]] = {case.name: [] for case in cases}
    for _ in range(repeats):
        for case in cases:  # side by side: every repeat times every framework, one after another
            runs = runs_per_batch[case.name]
            per_step_s[case.name].append(time_batch(case, runs) / (runs * STEPS_PER_RUN))
    return _section(cases, per_step_s, runs_per_batch, repeats)


def _section(
    cases: list[FrameworkCase],
    per_step_s: dict[str, list[float]],
    runs_per_batch: dict[str, int],
    repeats: int,
) -> Section:
    ours = per_step_s["fncall"]
    rows = []
    medians: dict[str, float] = {}
    ratios: dict[str, Spread] = {}
    for case in cases:
        spread = Spread.of(per_step_s[case.name]).scaled(1e6)
        medians[case.name] = spread.median
        ratio = paired_ratios(per_step_s[case.name], ours)
        ratios[case.name] = ratio
        rows.append(
            [
                f"{case.name} {case.version}",
                spread.format(1),
                ratio.format(2) + "x",
                str(runs_per_batch[case.name]),
            ]
        )
    peers = [case.name for case in cases if case.name != "fncall"]
    fastest = min(peers, key=lambda name: medians[name])
    factor = ratios[fastest]
    verdict = "met" if factor.median >= TARGET_FACTOR else "missed"
    findings = [
        f"fncall: {medians['fncall']:.1f} µs of loop overhead per step; the fastest peer, {fastest}, "
        f"{medians[fastest]:.1f} µs: fncall is {factor.format(1)}x less per step "
        f"(target ≥ {TARGET_FACTOR:.0f}x: {verdict}).",
        "Slowest peer: "
        + max(peers, key=lambda name: medians[name])
        + f" at {max(ratios[name].median for name in peers):.1f}x fncall's overhead.",
    ]
    method = (
        f"Task: `{TASK}`, as 3 model steps (call `add(2, 3)`, call `add(5, 5)`, answer). Every framework "
        "gets a zero-latency scripted model of its own kind (fncall `Scripted` with a responder, a LangChain "
        "`BaseChatModel` with native async for LangGraph's `create_react_agent`, an Agents SDK `Model`, "
        "pydantic-ai's `FunctionModel`, a smolagents `Model` for `ToolCallingAgent`) and the same trivial "
        "tool, async where the framework has an async path (smolagents is sync only). Agents are built "
        "once; each timed batch runs the whole task back to back (a fresh event loop per batch), and the "
        "time is divided by runs x 3 steps, so per-run setup inside each framework's `run` counts. Before "
        "timing, each framework is checked to have made exactly 2 tool calls and returned the answer. "
        f"{repeats} repeats; in each repeat all frameworks are timed one after another, and the ratio to "
        "fncall is taken within the repeat. Tracing is off in the Agents SDK (it would export to OpenAI)."
    )
    table = Table(
        "Overhead per agent step (µs, lower is better) and ratio to fncall (higher = slower than fncall)",
        ["framework", "µs per step", "x fncall", "runs per batch"],
        rows,
    )
    chart = bar_chart(
        "bench_agent_overhead.png",
        title="Agent-loop overhead per step (scripted model, zero latency)",
        labels=[case.name for case in cases],
        spreads=[Spread.of(per_step_s[case.name]).scaled(1e6) for case in cases],
        unit="µs per step (log scale)",
        log=True,
    )
    return Section(NAME, TITLE, method, [table], [chart], findings)
