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
from fncall.agents.result import Outcome, RunResult, Step, StepPurpose
from fncall.agents.runner import RunInput, Runner, RunStream, run, run_sync, stream
from fncall.agents.state import LLMRequest, RunState

__all__ = [
    "EXCHANGE_DEFAULT_QUERY",
    "EXCHANGE_SYSTEM_PROMPT",
    "Agent",
    "LLMRequest",
    "Outcome",
    "RunInput",
    "RunResult",
    "RunState",
    "RunStream",
    "Runner",
    "Step",
    "StepPurpose",
    "assistant_for",
    "exchange_assistant",
    "general_assistant",
    "run",
    "run_sync",
    "stock_assistant",
    "stream",
]
