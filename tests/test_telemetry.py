"""OpenTelemetry spans of agent runs, LLM calls and tool calls, read back from an in-memory exporter."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import fncall.telemetry
from fncall.agents import Agent
from fncall.agents.react import ReactRunner
from fncall.errors import ConfigError, LLMError
from fncall.llms.scripted import Scripted
from fncall.telemetry import Telemetry, TracedLLM, instrument
from fncall.tools import tool
from fncall.types import Completion, GenerationParams, Message, ToolCall, Usage


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(exporter: InMemorySpanExporter) -> Telemetry:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return instrument(provider)


def _reply(message: Message, prompt_tokens: int, completion_tokens: int) -> Completion:
    finish = "tool_calls" if message.tool_calls else "stop"
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    return Completion(message=message, finish_reason=finish, usage=usage, model="scripted-1")


def _calculator(llm: Scripted) -> Agent:
    return Agent(name="calculator", llm=llm, tools=[add, divide])


def _by_name(spans: Sequence[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        named.setdefault(span.name, []).append(span)
    return named


def _tool_turn_then_answer() -> Scripted:
    return Scripted(
        [
            _reply(
                Message.assistant(
                    tool_calls=[
                        ToolCall(id="call_add", name="add", arguments={"a": 2, "b": 3}),
                        ToolCall(id="call_div", name="divide", arguments={"a": 1, "b": 0}),
                    ]
                ),
                prompt_tokens=50,
                completion_tokens=20,
            ),
            _reply(
                Message.assistant("2 + 3 is 5; 1 / 0 is undefined."), prompt_tokens=90, completion_tokens=12
            ),
        ],
        model="scripted-model",
    )


async def test_a_run_is_an_agent_span_with_chat_and_tool_spans_inside(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    result = await telemetry.runner().run(_calculator(_tool_turn_then_answer()), "Compute 2+3 and 1/0.")
    assert result.outcome == "answered"

    spans = exporter.get_finished_spans()
    named = _by_name(spans)
    assert sorted(named) == [
        "chat scripted-model",
        "execute_tool add",
        "execute_tool divide",
        "invoke_agent calculator",
    ]
    (agent_span,) = named["invoke_agent calculator"]
    assert agent_span.parent is None
    assert agent_span.kind == SpanKind.INTERNAL
    assert agent_span.attributes is not None
    assert dict(agent_span.attributes) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "calculator",
        "gen_ai.provider.name": "fncall.scripted",
        "gen_ai.request.model": "scripted-model",
        "gen_ai.usage.input_tokens": 140,
        "gen_ai.usage.output_tokens": 32,
        "fncall.run.outcome": "answered",
    }
    assert agent_span.status.status_code == StatusCode.UNSET

    children = [span for span in spans if span is not agent_span]
    assert len(children) == 4
    for child in children:
        assert child.parent is not None and child.parent.span_id == agent_span.context.span_id
        assert child.context.trace_id == agent_span.context.trace_id


async def test_chat_spans_carry_model_usage_and_finish_reasons(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    agent = _calculator(_tool_turn_then_answer()).model_copy(
        update={"params": GenerationParams(temperature=0.0, seed=7)}
    )
    await telemetry.runner().run(agent, "Compute.")
    chats = _by_name(exporter.get_finished_spans())["chat scripted-model"]
    assert [span.kind for span in chats] == [SpanKind.CLIENT, SpanKind.CLIENT]
    first, second = (dict(span.attributes or {}) for span in chats)
    assert first == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "fncall.scripted",
        "gen_ai.request.model": "scripted-model",
        "gen_ai.request.temperature": 0.0,
        "gen_ai.request.seed": 7,
        "gen_ai.response.model": "scripted-1",
        "gen_ai.response.finish_reasons": ("tool_calls",),
        "gen_ai.usage.input_tokens": 50,
        "gen_ai.usage.output_tokens": 20,
    }
    assert second["gen_ai.response.finish_reasons"] == ("stop",)
    assert (second["gen_ai.usage.input_tokens"], second["gen_ai.usage.output_tokens"]) == (90, 12)


async def test_tool_spans_name_the_call_and_a_failing_tool_has_error_status(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    await telemetry.runner().run(_calculator(_tool_turn_then_answer()), "Compute.")
    named = _by_name(exporter.get_finished_spans())
    (added,) = named["execute_tool add"]
    (divided,) = named["execute_tool divide"]
    assert dict(added.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.call.id": "call_add",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.description": "Add two integers.",
    }
    assert added.status.status_code == StatusCode.UNSET
    assert divided.status.status_code == StatusCode.ERROR
    assert divided.status.description == "Error: divide raised ZeroDivisionError: float division by zero"
    assert (divided.attributes or {})["error.type"] == "tool_exception"
    assert (divided.attributes or {})["gen_ai.tool.call.id"] == "call_div"


async def test_capture_content_records_tool_arguments_and_results(exporter: InMemorySpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = instrument(provider, capture_content=True)
    executor = telemetry.tool_executor([add])
    await executor.run_call(ToolCall(id="c1", name="add", arguments={"a": 1, "b": 2}))
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert (attributes["gen_ai.tool.call.arguments"], attributes["gen_ai.tool.call.result"]) == (
        '{"a": 1, "b": 2}',
        "3",
    )


async def test_a_streamed_run_nests_its_spans_the_same_way(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    run = telemetry.runner().stream(_calculator(_tool_turn_then_answer()), "Compute.")
    events = [event.type async for event in run]
    assert events[-1] == "final_answer"
    assert run.result.outcome == "answered"
    spans = exporter.get_finished_spans()
    (agent_span,) = _by_name(spans)["invoke_agent calculator"]
    assert (agent_span.attributes or {})["gen_ai.usage.input_tokens"] == 140
    others = [span for span in spans if span is not agent_span]
    assert sorted(span.name for span in others) == [
        "chat scripted-model",
        "chat scripted-model",
        "execute_tool add",
        "execute_tool divide",
    ]
    assert all(
        span.parent is not None and span.parent.span_id == agent_span.context.span_id for span in others
    )
    chats = _by_name(spans)["chat scripted-model"]
    assert [(span.attributes or {})["gen_ai.response.finish_reasons"] for span in chats] == [
        ("tool_calls",),
        ("stop",),
    ]


async def test_a_failing_llm_marks_the_chat_and_agent_spans_as_errors(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    def broken(_request: object) -> str:
        raise LLMError("the backend is down")

    result = await telemetry.runner().run(_calculator(Scripted(broken)), "Compute.")
    assert result.outcome == "llm_error"
    named = _by_name(exporter.get_finished_spans())
    (chat,) = named["chat scripted"]
    assert chat.status.status_code == StatusCode.ERROR
    assert (chat.attributes or {})["error.type"] == "LLMError"
    assert [event.name for event in chat.events] == ["exception"]
    (agent_span,) = named["invoke_agent calculator"]
    assert agent_span.status.status_code == StatusCode.ERROR
    assert (agent_span.attributes or {})["error.type"] == "llm_error"
    assert chat.parent is not None and chat.parent.span_id == agent_span.context.span_id


async def test_other_runner_classes_can_be_traced(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    runner = telemetry.runner(ReactRunner)
    assert isinstance(runner, ReactRunner)
    llm = Scripted(["Thought: I know this.\nFinal Answer: 5"])
    result = await runner.run(_calculator(llm), "What is 2+3?")
    assert result.final_answer == "5"
    assert sorted(span.name for span in exporter.get_finished_spans()) == [
        "chat scripted",
        "invoke_agent calculator",
    ]


def test_wrapping_is_idempotent(telemetry: Telemetry) -> None:
    traced = telemetry.llm(Scripted([]))
    assert isinstance(traced, TracedLLM)
    assert telemetry.llm(traced) is traced
    agent = telemetry.agent(_calculator(Scripted([])))
    assert telemetry.agent(agent) is agent


def test_without_opentelemetry_import_works_and_instrument_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [
        name for name in sys.modules if name == "opentelemetry" or name.startswith("opentelemetry.")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # makes `import opentelemetry` fail
    source = Path(fncall.telemetry.__file__)
    spec = importlib.util.spec_from_file_location("fncall_telemetry_without_otel", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.otel_available() is False
    with pytest.raises(ConfigError, match=r"pip install 'fncall\[otel\]'"):
        module.instrument()
