"""The same cases run by fncall's own agents in-process: the function-calling Runner and the ReAct runner.

The fake tools become fncall Tools whose output is the very text the HTTP client sends, so both paths show
the model the same results. An agent gets as many LLM steps as the HTTP client gets rounds; a run that ends
any other way than with the model's own answer (budget, loop detection, LLM failure) fails the case.
"""

from __future__ import annotations

import time
from typing import Any

from fncall.agents import Agent, Runner
from fncall.agents.react import FORMAT_ERROR_TOOL, ReactRunner
from fncall.evals.grounding.cases import SYSTEM_PROMPT, GroundingCase
from fncall.evals.grounding.client import DEFAULT_MAX_ROUNDS, DEFAULT_MAX_TOKENS
from fncall.evals.grounding.fake_tools import FAKE_TOOLS, run_fake_tool
from fncall.evals.grounding.results import MadeCall, Transcript
from fncall.llms.base import LLM
from fncall.tools import Tool, ToolError
from fncall.types import GenerationParams


class AgentDriver:
    """Runs cases with an fncall agent over `llm`; `react` picks the ReAct runner."""

    def __init__(
        self,
        llm: LLM,
        *,
        react: bool = False,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.llm = llm
        self.runner: Runner = ReactRunner() if react else Runner()
        self.max_rounds = max_rounds
        self.params = GenerationParams(temperature=0, max_tokens=max_tokens)

    async def aclose(self) -> None:
        """Nothing to release: the LLM belongs to the caller."""

    async def run_case(self, case: GroundingCase) -> Transcript:
        agent = Agent(
            name=f"grounding-{case.id}",
            instructions=SYSTEM_PROMPT,
            llm=self.llm,
            tools=[_agent_tool(name) for name in case.tools],
            max_steps=self.max_rounds,
            params=self.params,
        )
        started = time.perf_counter()
        transcript = Transcript()
        try:
            result = await self.runner.run(agent, case.question)
        except Exception as error:  # the runner promises an outcome; a bug must still fail one case only
            transcript.error = f"{type(error).__name__}: {error}"
            transcript.seconds = time.perf_counter() - started
            return transcript
        transcript.seconds = time.perf_counter() - started
        for step in result.steps:
            if step.kind == "llm":
                transcript.rounds = max(transcript.rounds, step.index)
            if step.kind != "tool" or step.call is None or step.call.name == FORMAT_ERROR_TOOL:
                continue
            transcript.calls.append(
                MadeCall(
                    name=step.call.name,
                    arguments=step.call.arguments,
                    unparsed_arguments=step.call.unparsed_arguments,
                    round=step.index,
                    result=step.result.content if step.result else "",
                    is_error=bool(step.result and step.result.is_error),
                )
            )
        if result.outcome == "answered":
            transcript.answer = result.final_answer
        else:
            detail = result.error or result.final_answer[:300]
            transcript.error = f"the run ended with outcome {result.outcome}: {detail}"
        return transcript


def _agent_tool(name: str) -> Tool:
    """A fake tool as an fncall Tool; its errors reach the model as "Error: ..." like over HTTP."""
    fake = FAKE_TOOLS[name]

    def call(**arguments: Any) -> str:
        outcome = run_fake_tool(name, arguments)
        if outcome.is_error:
            raise ToolError(outcome.content.removeprefix("Error: "))
        return outcome.content

    return Tool.from_schema(fake.name, fake.description, fake.parameters, call)
