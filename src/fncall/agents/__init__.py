"""Function-calling agents: an agent is data (`Agent`), the loop that runs it is `Runner`."""

from fncall.agents.agent import Agent
from fncall.agents.assistants import (
    EXCHANGE_DEFAULT_QUERY,
    EXCHANGE_SYSTEM_PROMPT,
    assistant_for,
    exchange_assistant,
    general_assistant,
    stock_assistant,
)
from fncall.agents.events import PausedEvent, RunEvent
from fncall.agents.flow import (
    FlowAgent,
    FlowRunner,
    FlowRunResult,
    FlowStep,
    run_flow,
    stream_flow,
)
from fncall.agents.http_tool import http_tool
from fncall.agents.react import ReactRunner, run_react, stream_react
from fncall.agents.result import Outcome, PauseReason, PendingCall, RunResult, Step, StepPurpose
from fncall.agents.resume import ApprovalDecision
from fncall.agents.runner import RunInput, Runner, RunStream, resume, resume_stream, run, run_sync, stream
from fncall.agents.spec import (
    AgentSpec,
    AgentSpecError,
    BuiltAgent,
    build_agent,
    load_agent_spec,
    run_spec,
    stream_spec,
)
from fncall.agents.state import LLMRequest, RunState, StepCallback

__all__ = [
    "EXCHANGE_DEFAULT_QUERY",
    "EXCHANGE_SYSTEM_PROMPT",
    "Agent",
    "AgentSpec",
    "AgentSpecError",
    "ApprovalDecision",
    "BuiltAgent",
    "FlowAgent",
    "FlowRunResult",
    "FlowRunner",
    "FlowStep",
    "LLMRequest",
    "Outcome",
    "PauseReason",
    "PausedEvent",
    "PendingCall",
    "ReactRunner",
    "RunEvent",
    "RunInput",
    "RunResult",
    "RunState",
    "RunStream",
    "Runner",
    "Step",
    "StepCallback",
    "StepPurpose",
    "assistant_for",
    "build_agent",
    "exchange_assistant",
    "general_assistant",
    "http_tool",
    "load_agent_spec",
    "resume",
    "resume_stream",
    "run",
    "run_flow",
    "run_react",
    "run_spec",
    "run_sync",
    "stock_assistant",
    "stream",
    "stream_flow",
    "stream_react",
    "stream_spec",
]
