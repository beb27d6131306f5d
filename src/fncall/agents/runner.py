"""The function-calling loop: ask the model, run the calls it makes, feed the results back, until it answers.

One loop serves both `run` (the model is asked with `complete`) and `stream` (the model is asked with
`stream` and its text is forwarded as it arrives); `run` simply drains the same event generator. Budgets,
loop detection and LLM failures end a run with a defined outcome and a final answer, never an exception
(asyncio.CancelledError still propagates). Subclass `Runner` and override `next_request`,
`summary_request`, `on_step_finished` or `counts_against_budget` to change policy without touching the loop.

A call to a tool that `requires_approval` or is `client_side` pauses the run once the other calls of its
turn have run: the result has outcome "paused", the waiting calls and a JSON `state`. `resume` and
`resume_stream` answer the waiting calls and continue the same loop, with the budgets already used.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

from fncall.agents.agent import Agent
from fncall.agents.events import PausedEvent, RunEvent
from fncall.agents.result import PauseReason, PendingCall, RunResult, Step, StepPurpose
from fncall.agents.resume import ApprovalDecision, Resolution, resolve_pending
from fncall.agents.state import LLMRequest, RunState, StepCallback
from fncall.errors import InvalidRequestError, LLMError
from fncall.llms.base import StreamAssembler
from fncall.tools import ToolExecutor
from fncall.types import (
    AgentTextDeltaEvent,
    Completion,
    ErrorEvent,
    FinalAnswerEvent,
    FinishEvent,
    LLMResponseEvent,
    Message,
    StepStartedEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallEvent,
    ToolResult,
    ToolResultEvent,
)

RunInput = str | Sequence[Message]
Approvals = Mapping[str, bool | ApprovalDecision]
SubmittedResults = Mapping[str, str | ToolResult]

_NO_APPROVALS: Approvals = MappingProxyType({})
_NO_RESULTS: SubmittedResults = MappingProxyType({})

EMPTY_REPLY_NUDGE = (
    "Your last reply was empty. Answer the user's request now, or call one of the available tools if you "
    "need one."
)
SUMMARY_REQUEST = (
    "The run has to stop now: {reason} Do not call any tool. Summarise for the user what was done so far and "
    "what the tool results show, and give the best answer those results support."
)
LOOP_WARNING = (
    "Not executed: you already made this exact call ({name} with the same arguments) {times} times and its "
    "result is in the conversation above. Use that result or answer the user; do not repeat the call."
)
STOPPED_BEFORE_APPROVAL = "Not executed: the run stopped before this call could be approved."
STOPPED_BEFORE_CLIENT = "Not executed: the run stopped before this call could be sent to the client."
SUMMARY_PREFIX = "Here's a summary of the steps completed so far:"
_RESULT_PREVIEW_CHARS = 300


class _HoldsResult(Protocol):
    result: RunResult | None


class RunStream:
    """The events of a streamed run, as an async iterator; `result` holds the RunResult once it is over."""

    def __init__(self, events: AsyncGenerator[RunEvent, None], state: _HoldsResult) -> None:
        self._events = events
        self._state = state

    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> RunEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Stop the run early (pending tool calls are cancelled)."""
        await self._events.aclose()

    @property
    def result(self) -> RunResult:
        if self._state.result is None:
            raise RuntimeError(
                "the run is not finished yet: iterate the stream to its end before reading result"
            )
        return self._state.result


class Runner:
    """Runs agents. Holds no state of its own: everything about a run lives in its RunState."""

    async def run(
        self,
        agent: Agent,
        input: RunInput,
        *,
        history: Sequence[Message] | None = None,
        on_step: StepCallback | None = None,
    ) -> RunResult:
        """Run `agent` on `input` (a user message or messages) after `history`, and return the result.
        `on_step(state, step)` is called after each step (a TraceRecorder's `on_step_finished` fits)."""
        return await _drain(self._start(agent, input, history, on_step, streaming=False))

    def stream(
        self,
        agent: Agent,
        input: RunInput,
        *,
        history: Sequence[Message] | None = None,
        on_step: StepCallback | None = None,
    ) -> RunStream:
        """Run `agent`, yielding its events as they happen; the model is asked through its `stream()`."""
        return self._start(agent, input, history, on_step, streaming=True)

    async def resume(
        self,
        agent: Agent,
        state: Mapping[str, Any],
        *,
        approvals: Approvals = _NO_APPROVALS,
        tool_results: SubmittedResults = _NO_RESULTS,
        on_step: StepCallback | None = None,
    ) -> RunResult:
        """Continue a paused run from its `state` (RunResult.state, possibly after a JSON round trip).

        Every pending call needs an answer: `approvals[call_id]` (True, False or an ApprovalDecision) for a
        call that waits for approval, `tool_results[call_id]` (the text, or a ToolResult) for a client-side
        call. Raises InvalidRequestError before anything runs when one is missing or names no pending call.
        """
        return await _drain(
            self._resume_start(agent, state, approvals, tool_results, on_step, streaming=False)
        )

    def resume_stream(
        self,
        agent: Agent,
        state: Mapping[str, Any],
        *,
        approvals: Approvals = _NO_APPROVALS,
        tool_results: SubmittedResults = _NO_RESULTS,
        on_step: StepCallback | None = None,
    ) -> RunStream:
        """`resume`, yielding events: the results of the calls that waited, then the run's next steps."""
        return self._resume_start(agent, state, approvals, tool_results, on_step, streaming=True)

    def run_sync(
        self,
        agent: Agent,
        input: RunInput,
        *,
        history: Sequence[Message] | None = None,
        on_step: StepCallback | None = None,
    ) -> RunResult:
        """`run` for code without an event loop (scripts, notebooks without await)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(agent, input, history=history, on_step=on_step))
        raise RuntimeError(
            "run_sync() cannot be called from a running event loop: use `await run(...)` instead"
        )

    # ------------------------------------------------------------------------------------------ hooks

    def next_request(self, state: RunState) -> LLMRequest:
        """The request for the next turn. A named or `required` tool_choice applies to the first turn
        only; afterwards it falls back to `auto`, or the model could never stop calling tools."""
        agent = state.agent
        tool_choice = agent.tool_choice
        if tool_choice not in ("auto", "none") and any(step.kind == "tool" for step in state.steps):
            tool_choice = "auto"
        params = agent.params.model_copy(update={"parallel_tool_calls": agent.parallel_tool_calls})
        return LLMRequest(list(state.messages), agent.tools.specs(), tool_choice, params)

    def summary_request(self, state: RunState) -> LLMRequest:
        """The closing request after a budget ran out: the transcript, a request to summarise, no tools."""
        params = state.agent.params.model_copy(update={"parallel_tool_calls": False})
        return LLMRequest(list(state.messages), [], "none", params)

    async def on_step_finished(self, state: RunState, step: Step) -> None:
        """Called after every LLM and tool step is recorded (memory traces plug in here, or via `on_step`)."""

    def counts_against_budget(self, call: ToolCall) -> bool:
        """Whether `call` uses up `max_tool_calls` and counts for loop detection. Pseudo calls a runner
        answers itself (ReAct's format reminder) return False: they are not tool work the model chose."""
        return True

    def tool_executor(self, agent: Agent) -> ToolExecutor:
        """The executor of one turn's calls; override to wrap or replace tool execution."""
        return ToolExecutor(
            agent.tools, max_concurrency=agent.max_concurrency, default_timeout_s=agent.tool_timeout_s
        )

    # ------------------------------------------------------------------------------------------- loop

    async def _record(self, state: RunState, step: Step) -> None:
        state.steps.append(step)
        await self.on_step_finished(state, step)
        if state.on_step is not None:
            outcome = state.on_step(state, step)
            if inspect.isawaitable(outcome):
                await outcome

    def _start(
        self,
        agent: Agent,
        input: RunInput,
        history: Sequence[Message] | None,
        on_step: StepCallback | None,
        *,
        streaming: bool,
    ) -> RunStream:
        state = RunState(agent=agent, messages=_initial_messages(agent, input, history), on_step=on_step)
        return RunStream(self._drive(state, streaming), state)

    def _resume_start(
        self,
        agent: Agent,
        data: Mapping[str, Any],
        approvals: Approvals,
        tool_results: SubmittedResults,
        on_step: StepCallback | None,
        *,
        streaming: bool,
    ) -> RunStream:
        """Checks the saved state and the answers now, so a bad request raises before anything runs."""
        state = RunState.from_dict(agent, data)
        if not state.pending:
            raise InvalidRequestError(
                "This run state is not paused: no call waits for an approval or a client-side result, so "
                "there is nothing to resume.",
                param="state",
            )
        resolutions = resolve_pending(state.pending, agent.tools, approvals, tool_results)
        state.on_step = on_step
        return RunStream(self._drive(state, streaming, resolutions), state)

    async def _drive(
        self, state: RunState, streaming: bool, resolutions: list[Resolution] | None = None
    ) -> AsyncGenerator[RunEvent, None]:
        state.start_clock()
        if resolutions is not None:
            async for event in self._finish_paused_turn(state, resolutions):
                yield event
        agent = state.agent
        purpose: StepPurpose = "act"
        while state.outcome is None:
            if state.llm_turns >= agent.max_steps:
                state.stop(
                    "max_steps",
                    f"Agent reached maximum iterations ({agent.max_steps}) without completing the task.",
                )
                break
            if state.time_is_up():
                state.stop("timeout", _timeout_reason(agent))
                break
            state.llm_turns += 1
            step = _next_step(state)
            yield StepStartedEvent(step=step)
            completion: Completion | None = None
            async for event in self._llm_step(state, self.next_request(state), step, purpose, streaming):
                if isinstance(event, LLMResponseEvent):
                    completion = event.completion
                yield event
            if completion is None:
                break  # _llm_step recorded the failure and stopped the run
            message = completion.message
            if message.tool_calls:
                state.empty_replies_in_a_row = 0
                purpose = "act"
                state.messages.append(message)
                async for event in self._tool_phase(state, message.tool_calls, step):
                    yield event
            elif message.text.strip():
                state.messages.append(message)
                state.outcome = "answered"
                state.final_answer = message.text
            else:
                state.empty_replies_in_a_row += 1
                if state.empty_replies_in_a_row > 1:
                    state.stop(
                        "llm_error",
                        "The model replied with neither text nor a tool call twice, so the task was not "
                        "completed.",
                        error="empty reply",
                    )
                    break
                state.messages.append(Message.user(EMPTY_REPLY_NUDGE))
                purpose = "retry"
        if state.outcome == "paused":
            state.result = state.to_result()
            yield PausedEvent(step=state.step_index, pending=list(state.pending))
            return
        if state.outcome != "answered":
            async for event in self._conclude(state, streaming):
                yield event
        state.result = state.to_result()
        yield FinalAnswerEvent(text=state.final_answer, outcome=state.result.outcome)

    async def _llm_step(
        self, state: RunState, request: LLMRequest, step: int, purpose: StepPurpose, streaming: bool
    ) -> AsyncGenerator[RunEvent, None]:
        """One LLM call: forwards text deltas, then yields an LLMResponseEvent; on failure it records the
        failed step, stops the run and yields nothing more (the caller sees no LLMResponseEvent)."""
        started_at = datetime.now(UTC)
        clock = time.perf_counter()
        completion: Completion | None = None
        failure: str | None = None
        timed_out = False
        try:
            if streaming:
                assembler = _CompletionAssembler()
                async for delta in self._stream_llm(state, request, assembler):
                    yield AgentTextDeltaEvent(step=step, text=delta)
                completion = assembler.completion
            elif state.deadline is None:
                completion = await state.agent.llm.complete(
                    request.messages, request.tools, request.tool_choice, request.params
                )
            else:
                async with asyncio.timeout_at(state.deadline):
                    completion = await state.agent.llm.complete(
                        request.messages, request.tools, request.tool_choice, request.params
                    )
        except TimeoutError as exc:
            timed_out = state.time_is_up()
            failure = "the run's time limit ran out during the LLM call" if timed_out else _describe(exc)
        except LLMError as exc:
            failure = str(exc) or type(exc).__name__
        except Exception as exc:  # a backend bug must still end the run with an outcome, not a crash
            failure = _describe(exc)
        duration_s = time.perf_counter() - clock
        if completion is None:
            failure = failure or "the LLM returned no completion"
            record = Step(
                index=step,
                kind="llm",
                started_at=started_at,
                duration_s=duration_s,
                purpose=purpose,
                error=failure,
            )
            await self._record(state, record)
            if purpose == "summary":
                return
            if timed_out:
                state.stop("timeout", _timeout_reason(state.agent), error=failure)
            else:
                reason = f"The language model failed, so the task was not completed: {_sentence(failure)}"
                state.stop("llm_error", reason, error=failure)
            return
        state.usage = state.usage + completion.usage
        record = Step(
            index=step,
            kind="llm",
            started_at=started_at,
            duration_s=duration_s,
            purpose=purpose,
            completion=completion,
        )
        await self._record(state, record)
        yield LLMResponseEvent(step=step, completion=completion, duration_s=duration_s)

    async def _stream_llm(
        self, state: RunState, request: LLMRequest, assembler: _CompletionAssembler
    ) -> AsyncGenerator[str, None]:
        """Reads the backend's stream under the run's deadline, yielding text as it comes. The deadline
        guards each read only, never the consumer's time between yields."""
        events = state.agent.llm.stream(request.messages, request.tools, request.tool_choice, request.params)
        try:
            while True:
                async with asyncio.timeout_at(state.deadline):
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        break
                if isinstance(event, FinishEvent):
                    assembler.finish(event.completion)
                    break
                assembler.add(event)
                if isinstance(event, TextDeltaEvent) and event.text:
                    yield event.text
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def _tool_phase(
        self, state: RunState, calls: list[ToolCall], step: int
    ) -> AsyncGenerator[RunEvent, None]:
        """Runs one turn's calls (concurrently) and appends one tool message per call, in call order.

        Calls that wait (approval, client side) are held: the others run, their results are kept in
        `state.turn_results` and the run pauses. A run that stops in this turn does not pause; its held
        calls are answered with a refusal instead."""
        for call in calls:
            yield ToolCallEvent(step=step, call=call)
        refusals = self._screen_calls(state, calls)
        holds: list[PauseReason | None] = []
        for index, (call, refusal) in enumerate(zip(calls, refusals, strict=True)):
            hold = _hold(state.agent, call) if refusal is None else None
            if isinstance(hold, ToolResult):
                refusals[index], hold = hold, None
            holds.append(hold)
        runnable = [
            call
            for call, refusal, hold in zip(calls, refusals, holds, strict=True)
            if refusal is None and not hold
        ]
        executed = iter(await self._execute(state, runnable))
        pausing = any(holds) and state.outcome is None
        pending: list[PendingCall] = []
        for call, refusal, hold in zip(calls, refusals, holds, strict=True):
            if hold is not None and pausing:
                pending.append(PendingCall(call=call, reason=hold))
                continue
            if hold is not None:
                refusal = _refusal(
                    call, STOPPED_BEFORE_APPROVAL if hold == "approval" else STOPPED_BEFORE_CLIENT
                )
                self._uncount(state, call)
            if refusal is None:
                result, started_at, duration_s = next(executed)
            else:
                result, started_at, duration_s = refusal, datetime.now(UTC), 0.0
            result = await self._record_tool_result(state, step, call, result, started_at, duration_s)
            if pausing:
                state.turn_results.append(result)
            else:
                state.messages.append(Message.tool(result))
            yield ToolResultEvent(step=step, result=result, duration_s=duration_s)
        if pending:
            state.pause(pending)

    async def _finish_paused_turn(
        self, state: RunState, resolutions: list[Resolution]
    ) -> AsyncGenerator[RunEvent, None]:
        """Answers the calls a run paused on (approved calls run now), then puts the whole turn's results
        into the transcript in the order the model made the calls."""
        step = state.step_index
        pending_ids = {item.call.id for item in state.pending}
        to_run = [resolution.call for resolution in resolutions if resolution.action == "run"]
        executed = iter(await self._execute(state, to_run))
        results = {result.call_id: result for result in state.turn_results}
        edited = {resolution.call.id: resolution.call for resolution in resolutions}
        for resolution in resolutions:
            call = resolution.call
            if resolution.result is None:
                result, started_at, duration_s = next(executed)
            else:
                result, started_at, duration_s = resolution.result, datetime.now(UTC), 0.0
            if resolution.action == "rejected":
                self._uncount(state, call)
            result = await self._record_tool_result(state, step, call, result, started_at, duration_s)
            results[call.id] = result
            yield ToolResultEvent(step=step, result=result, duration_s=duration_s)
        turn = state.messages[-1]
        calls = [edited.get(call.id, call) for call in turn.tool_calls]
        state.messages[-1] = turn.model_copy(update={"tool_calls": calls})
        for call in calls:
            if call.id in results:
                state.messages.append(Message.tool(results[call.id]))
            elif call.id in pending_ids:  # cannot happen: resolve_pending answers every pending call
                raise RuntimeError(f"the paused call {call.id!r} was not answered")
        state.pending = []
        state.turn_results = []

    async def _record_tool_result(
        self,
        state: RunState,
        step: int,
        call: ToolCall,
        result: ToolResult,
        started_at: datetime,
        duration_s: float,
    ) -> ToolResult:
        """Records one tool step; returns the result, its call id made to match the call."""
        if result.call_id != call.id:
            result = result.model_copy(update={"call_id": call.id})
        record = Step(
            index=step, kind="tool", started_at=started_at, duration_s=duration_s, call=call, result=result
        )
        await self._record(state, record)
        return result

    def _uncount(self, state: RunState, call: ToolCall) -> None:
        """Gives back the budget a screened call took when it ends up not running (rejected, or held in a
        turn that stopped the run)."""
        if self.counts_against_budget(call):
            state.tool_calls_executed -= 1

    def _screen_calls(self, state: RunState, calls: list[ToolCall]) -> list[ToolResult | None]:
        """Decides which calls run. A refused call gets an error result for the model instead; a call
        repeated `loop_limit` times is refused once with a warning, and repeating it again stops the run.
        Calls that do not count against the budget (`counts_against_budget`) are never refused here."""
        agent = state.agent
        refusals: list[ToolResult | None] = []
        persisting: ToolCall | None = None
        over_budget = False
        counted = 0
        for call in calls:
            if not self.counts_against_budget(call):
                refusals.append(None)
                continue
            signature = call.signature()
            count = state.call_counts[signature] + 1
            state.call_counts[signature] = count
            if agent.loop_limit is not None and count > agent.loop_limit:
                persisting = persisting or call
                refusals.append(_refusal(call, "Not executed: this exact call was repeated after a warning."))
            elif agent.loop_limit is not None and count == agent.loop_limit:
                refusals.append(_refusal(call, LOOP_WARNING.format(name=call.name, times=count - 1)))
            elif agent.max_tool_calls is not None and state.tool_calls_executed >= agent.max_tool_calls:
                over_budget = True
                refusals.append(
                    _refusal(
                        call,
                        f"Not executed: the run's limit of {agent.max_tool_calls} tool calls is used up.",
                    )
                )
            else:
                state.tool_calls_executed += 1
                counted += 1
                refusals.append(None)
        if persisting is not None:
            stopped = "Not executed: the run is stopping because a tool call was repeated."
            state.tool_calls_executed -= counted
            refusals = [
                refusal or _refusal(call, stopped) for call, refusal in zip(calls, refusals, strict=True)
            ]
            reason = (
                f"Agent stopped because the model kept repeating the call {persisting.name}"
                f"({persisting.arguments_json()}) without completing the task."
            )
            state.stop("loop_detected", reason)
        elif over_budget:
            state.stop(
                "max_tool_calls",
                f"Agent reached the maximum number of tool calls ({agent.max_tool_calls}) without completing "
                "the task.",
            )
        return refusals

    async def _execute(
        self, state: RunState, calls: list[ToolCall]
    ) -> list[tuple[ToolResult, datetime, float]]:
        """Runs calls concurrently (one at a time when parallel_tool_calls is off) under the run's deadline.
        Calls still running at the deadline are cancelled and answered with an error result."""
        if not calls:
            return []
        agent = state.agent
        if state.executor is None:
            state.executor = self.tool_executor(agent)
        executor = state.executor
        if len(calls) == 1:
            return [await self._execute_one(state, executor, calls[0])]
        semaphore = asyncio.Semaphore(agent.max_concurrency if agent.parallel_tool_calls else 1)

        async def run_one(call: ToolCall) -> tuple[ToolResult, datetime, float]:
            async with semaphore:
                return await _run_on(executor, call)

        phase_started_at = datetime.now(UTC)
        phase_clock = time.perf_counter()
        tasks = [asyncio.create_task(run_one(call)) for call in calls]
        remaining = (
            None if state.deadline is None else max(0.0, state.deadline - asyncio.get_running_loop().time())
        )
        try:
            await asyncio.wait(tasks, timeout=remaining)
        finally:
            unfinished = [task for task in tasks if not task.done()]
            for task in unfinished:
                task.cancel()
        if unfinished:
            await asyncio.gather(*unfinished, return_exceptions=True)
            state.stop(
                "timeout", _timeout_reason(agent), error="the run's time limit ran out during tool calls"
            )
        outcomes: list[tuple[ToolResult, datetime, float]] = []
        for call, task in zip(calls, tasks, strict=True):
            if task in unfinished or task.cancelled():
                message = f"Cancelled: the run's time limit ran out while {call.name} was running."
                outcomes.append(
                    (_refusal(call, message), phase_started_at, time.perf_counter() - phase_clock)
                )
            else:
                outcomes.append(task.result())
        return outcomes

    async def _execute_one(
        self, state: RunState, executor: ToolExecutor, call: ToolCall
    ) -> tuple[ToolResult, datetime, float]:
        """`_execute` for a turn of one call: awaited in place, no task, under the run's deadline if any."""
        if state.deadline is None:
            return await _run_on(executor, call)
        phase_started_at = datetime.now(UTC)
        phase_clock = time.perf_counter()
        deadline = asyncio.timeout_at(state.deadline)
        try:
            async with deadline:
                return await _run_on(executor, call)
        except TimeoutError:
            if not deadline.expired():
                raise
        state.stop(
            "timeout", _timeout_reason(state.agent), error="the run's time limit ran out during tool calls"
        )
        message = f"Cancelled: the run's time limit ran out while {call.name} was running."
        return _refusal(call, message), phase_started_at, time.perf_counter() - phase_clock

    async def _conclude(self, state: RunState, streaming: bool) -> AsyncGenerator[RunEvent, None]:
        """Ends a run that did not answer: an error event, then (for spent step, call and loop budgets) a
        summary LLM call without tools, or a deterministic list of the steps when that is not possible."""
        reason = state.stop_reason or "The run ended without an answer."
        outcome = state.outcome or "llm_error"
        yield ErrorEvent(message=reason, kind=outcome, step=state.step_index or None)
        summary: str | None = None
        if outcome in ("max_steps", "max_tool_calls", "loop_detected") and not state.time_is_up():
            state.messages.append(Message.user(SUMMARY_REQUEST.format(reason=reason)))
            step = _next_step(state)
            yield StepStartedEvent(step=step)
            async for event in self._llm_step(state, self.summary_request(state), step, "summary", streaming):
                if isinstance(event, LLMResponseEvent) and event.completion.message.text.strip():
                    summary = event.completion.message.text.strip()
                    state.messages.append(Message.assistant(summary))
                yield event
        if summary is not None:
            state.final_answer = f"{reason} {SUMMARY_PREFIX} {summary}"
        else:
            state.final_answer = f"{reason} {_steps_digest(state.steps)}"


class _CompletionAssembler(StreamAssembler):
    """A StreamAssembler that also keeps the FinishEvent's completion, when the stream sends one."""

    def __init__(self) -> None:
        super().__init__()
        self._finished: Completion | None = None

    def finish(self, completion: Completion) -> None:
        self._finished = completion

    @property
    def completion(self) -> Completion:
        if self._finished is not None:
            return self._finished
        message = self.message()
        return Completion(message=message, finish_reason="tool_calls" if message.tool_calls else "stop")


async def _run_on(executor: ToolExecutor, call: ToolCall) -> tuple[ToolResult, datetime, float]:
    """One call through `executor`, with when it started and how long it took."""
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    try:
        result = (await executor.run_calls([call]))[0]
    except Exception as exc:  # the executor promises not to raise; a bug must not end the run
        result = _refusal(call, f"The tool {call.name} failed: {_describe(exc)}")
    return result, started_at, time.perf_counter() - clock


async def _drain(events: RunStream) -> RunResult:
    async for _ in events:
        pass
    return events.result


def _hold(agent: Agent, call: ToolCall) -> PauseReason | ToolResult | None:
    """Whether `call` waits instead of running: "client_side" or "approval" (client side wins when a tool is
    both: the client asks its user), None to run it now, or a ToolResult answering it at once.

    Calls whose arguments do not fit the schema are not held: no human is asked to approve a call that
    cannot run. The executor answers those to an approval tool; a client-side tool's get the problems here,
    since the executor refuses client-side tools outright."""
    selected = agent.tools.get(call.name)
    if selected is None or call.unparsed_arguments is not None:
        return None
    if not (selected.client_side or selected.requires_approval):
        return None
    problems = selected.argument_errors(call.arguments)
    if problems and selected.client_side:
        listed = "\n".join(f"- {problem}" for problem in problems)
        content = (
            f"Error: invalid arguments for {call.name}:\n{listed}\nFix these and call {call.name} again."
        )
        return ToolResult(
            call_id=call.id,
            name=call.name,
            content=content,
            is_error=True,
            data={"error_kind": "invalid_arguments"},
        )
    if problems:
        return None
    return "client_side" if selected.client_side else "approval"


def _initial_messages(agent: Agent, input: RunInput, history: Sequence[Message] | None) -> list[Message]:
    """System prompt, then history, then input. When the agent has instructions, system messages carried in
    history (e.g. a previous run's transcript) are dropped so the model sees one system prompt."""
    new_messages = [Message.user(input)] if isinstance(input, str) else list(input)
    earlier = list(history or [])
    if not agent.instructions:
        return earlier + new_messages
    kept = [message for message in earlier + new_messages if message.role != "system"]
    return [Message.system(agent.instructions), *kept]


def _next_step(state: RunState) -> int:
    state.step_index += 1
    return state.step_index


def _refusal(call: ToolCall, message: str) -> ToolResult:
    return ToolResult(call_id=call.id, name=call.name, content=message, is_error=True)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _timeout_reason(agent: Agent) -> str:
    return f"Agent ran out of time ({agent.timeout_s:g} s) before completing the task."


def _steps_digest(steps: list[Step]) -> str:
    """A deterministic account of the tool calls made, for when no model can summarise them."""
    lines: list[str] = []
    for step in steps:
        if step.kind != "tool" or step.call is None or step.result is None:
            continue
        content = step.result.content
        if len(content) > _RESULT_PREVIEW_CHARS:
            content = content[:_RESULT_PREVIEW_CHARS] + "..."
        status = "error: " if step.result.is_error else ""
        lines.append(f"{len(lines) + 1}. {step.call.name}({step.call.arguments_json()}) -> {status}{content}")
    if not lines:
        return "No tool was called."
    return SUMMARY_PREFIX + "\n" + "\n".join(lines)


_DEFAULT_RUNNER = Runner()


async def run(
    agent: Agent,
    input: RunInput,
    *,
    history: Sequence[Message] | None = None,
    on_step: StepCallback | None = None,
) -> RunResult:
    """Run `agent` on `input` with the default Runner."""
    return await _DEFAULT_RUNNER.run(agent, input, history=history, on_step=on_step)


def stream(
    agent: Agent,
    input: RunInput,
    *,
    history: Sequence[Message] | None = None,
    on_step: StepCallback | None = None,
) -> RunStream:
    """Stream the events of a run of `agent` on `input` with the default Runner."""
    return _DEFAULT_RUNNER.stream(agent, input, history=history, on_step=on_step)


async def resume(
    agent: Agent,
    state: Mapping[str, Any],
    *,
    approvals: Approvals = _NO_APPROVALS,
    tool_results: SubmittedResults = _NO_RESULTS,
    on_step: StepCallback | None = None,
) -> RunResult:
    """Continue a paused run with the default Runner."""
    return await _DEFAULT_RUNNER.resume(
        agent, state, approvals=approvals, tool_results=tool_results, on_step=on_step
    )


def resume_stream(
    agent: Agent,
    state: Mapping[str, Any],
    *,
    approvals: Approvals = _NO_APPROVALS,
    tool_results: SubmittedResults = _NO_RESULTS,
    on_step: StepCallback | None = None,
) -> RunStream:
    """Stream the continuation of a paused run with the default Runner."""
    return _DEFAULT_RUNNER.resume_stream(
        agent, state, approvals=approvals, tool_results=tool_results, on_step=on_step
    )


def run_sync(
    agent: Agent,
    input: RunInput,
    *,
    history: Sequence[Message] | None = None,
    on_step: StepCallback | None = None,
) -> RunResult:
    """Run `agent` to completion from synchronous code with the default Runner."""
    return _DEFAULT_RUNNER.run_sync(agent, input, history=history, on_step=on_step)


__all__ = [
    "Approvals",
    "RunInput",
    "RunStream",
    "Runner",
    "SubmittedResults",
    "resume",
    "resume_stream",
    "run",
    "run_sync",
    "stream",
]
