"""Running BFCL cases on a model in each mode and scoring every answer with BFCL's checker.

Modes, on the same model and the same cases:

    free         native tool calls, constrained decoding off (`constrained: false`)
    constrained  native tool calls, constrained decoding of the calls on (`constrained: true`)
    react        the ReAct agent's text protocol (Thought / Action / Action Input), no native tools
    react_constrained  the same, with the reply constrained by the ReAct grammar (`react_grammar`: an
                 offered tool's name on the Action line, its schema in the Action Input); opt-in

A single-turn BFCL case is scored on the model's first answer, so each mode asks once: the native modes
send the case's tools, the ReAct mode sends what the ReAct agent's first step sends (its protocol adapter,
`ReactProtocolLLM`) and reads back the action it parses. ReAct has one action per step, so it cannot make
the parallel calls some categories expect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from fncall.errors import ConfigError, FncallError
from fncall.evals.bfcl.conversion import messages_from_bfcl, tools_from_bfcl
from fncall.evals.bfcl.data import BfclCase
from fncall.evals.bfcl.scoring import decode_calls, score_case
from fncall.llms.base import LLM
from fncall.types import Completion, GenerationParams, ToolCall

Mode = Literal["free", "constrained", "react", "react_constrained"]
MODES: tuple[Mode, ...] = ("free", "constrained", "react", "react_constrained")
DEFAULT_MODES: tuple[Mode, ...] = ("free", "constrained", "react")
_REACT_MODES = ("react", "react_constrained")
LLM_FAILURE_ERROR = "llm_error"
DEFAULT_MAX_TOKENS = 512


class CaseResult(BaseModel):
    """One case answered in one mode: the verdict, what the model did, and what it cost."""

    id: str
    category: str
    mode: Mode
    valid: bool
    error_type: str | None = None
    errors: list[str] = Field(default_factory=list)
    calls: list[dict[str, Any]] = Field(default_factory=list)
    text: str | None = None
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def check_modes(modes: Sequence[str]) -> list[Mode]:
    """The modes, validated (duplicates dropped)."""
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        raise ConfigError(f"Unknown BFCL modes: {', '.join(unknown)}; choose among {', '.join(MODES)}.")
    return [mode for mode in MODES if mode in modes]


def react_protocol(llm: LLM, *, constrained: bool = False) -> LLM:
    """The ReAct agent's protocol over `llm`; a clear error while the ReAct agent is not installed."""
    try:
        from fncall.agents.react import ReactProtocolLLM
    except ImportError as error:
        raise ConfigError(
            "The react mode is not available: fncall's ReAct agent (fncall.agents.react) is not installed."
        ) from error
    return ReactProtocolLLM(llm, constrained=constrained)


def mode_params(mode: Mode, max_tokens: int = DEFAULT_MAX_TOKENS) -> GenerationParams:
    """Greedy decoding for every mode; the native modes force constrained decoding off or on."""
    constrained = {"free": False, "constrained": True}.get(mode)
    return GenerationParams(temperature=0.0, max_tokens=max_tokens, constrained=constrained)


async def run_case(llm: LLM, case: BfclCase, mode: Mode, max_tokens: int = DEFAULT_MAX_TOKENS) -> CaseResult:
    """Ask `llm` one case in one mode and score the answer; a failing backend is a wrong answer."""
    tools, names = tools_from_bfcl(case.functions)
    messages = messages_from_bfcl(case.messages)
    asker = react_protocol(llm, constrained=mode == "react_constrained") if mode in _REACT_MODES else llm
    started = time.perf_counter()
    try:
        completion = await asker.complete(messages, tools, "auto", mode_params(mode, max_tokens))
    except FncallError as error:
        return CaseResult(
            id=case.id,
            category=case.category,
            mode=mode,
            valid=False,
            error_type=LLM_FAILURE_ERROR,
            errors=[str(error)],
            latency_s=time.perf_counter() - started,
        )
    latency = time.perf_counter() - started
    calls, text = _answer(completion)
    decoded = decode_calls(calls, names)
    score = score_case(case, decoded)
    return CaseResult(
        id=case.id,
        category=case.category,
        mode=mode,
        valid=score.valid,
        error_type=score.error_type,
        errors=score.errors,
        calls=decoded
        if decoded is not None
        else [_raw_call(call, names.original(call.name)) for call in calls],
        text=text,
        latency_s=latency,
        prompt_tokens=completion.usage.prompt_tokens,
        completion_tokens=completion.usage.completion_tokens,
    )


async def run_cases(
    llm: LLM,
    cases: Sequence[BfclCase],
    modes: Sequence[Mode],
    *,
    concurrency: int = 1,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    on_result: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Every case in every mode, `concurrency` requests at a time; results in case-then-mode order.

    A case is asked in all modes before the next case starts, so a run stopped half way still compares
    the modes on the same cases. `on_result` sees each result as it arrives (progress bars, files).
    """
    if concurrency < 1:
        raise ConfigError(f"The concurrency must be at least 1, not {concurrency}.")
    if set(modes) & set(_REACT_MODES):
        react_protocol(llm)  # fail before any request when the mode cannot run
    slots = asyncio.Semaphore(concurrency)

    async def _one(case: BfclCase, mode: Mode) -> CaseResult:
        async with slots:
            result = await run_case(llm, case, mode, max_tokens)
        if on_result is not None:
            on_result(result)
        return result

    return await asyncio.gather(*(_one(case, mode) for case in cases for mode in modes))


def _answer(completion: Completion) -> tuple[list[ToolCall], str | None]:
    """The calls and the text of an answer; a ReAct reply that could not be read counts as text."""
    from_react_format_error = [call for call in completion.message.tool_calls if _is_format_error(call)]
    calls = [call for call in completion.message.tool_calls if not _is_format_error(call)]
    text = completion.message.content
    if from_react_format_error and not text:
        text = str(from_react_format_error[0].arguments.get("reply", ""))
    return calls, text


def _is_format_error(call: ToolCall) -> bool:
    try:
        from fncall.agents.react import FORMAT_ERROR_TOOL
    except ImportError:
        return False
    return call.name == FORMAT_ERROR_TOOL


def _raw_call(call: ToolCall, name: str) -> dict[str, Any]:
    return {name: call.unparsed_arguments if call.unparsed_arguments is not None else call.arguments}
