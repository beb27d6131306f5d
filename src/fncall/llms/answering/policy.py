"""The answer policy: what a backend does around tool calls so that a small model's reply either makes the
next call the question needs or answers from the results, stating their values.

It wraps a backend's raw generation (any function with the LLM protocol's `stream` signature).

After tool results (the conversation ends with tool messages, the client asks with `auto` or `none`):
1. proposal, only while the question has words the calls so far do not cover (nor codes among their
   values abbreviate: `km` covers "kilometers"): the model sees the conversation and the tools, as usual,
   and stops after its first call. When that call repeats an answered one, it is pointed at the record
   the question refers to ("the email of X's manager"), else asked once more in a fresh short turn
   without the repeated tool, where its values must all have been said. A proposed call is kept only if it
   has no result yet (not identical to an answered call), fits its tool's schema, takes a value from the
   results that the question does not hold (a dependent call), does not feed a tool's number back into
   the same tool, and is still asked for (see `answering.calls`; first calls: `answering.first_turn`).
   Skipped when the last round holds a tool error: the answer must then say that the tool failed.
2. answer step, when no call is kept and the proposal's text does not already state every value: a
   separate generation with no tools, one short user turn per result (see `answering.prompt`), streamed.
3. verification: values of the result the answer left out are added in one sentence built from the
   result's own keys; an answer that turns into JSON is cut there; an answer after a tool error that does
   not say so, or states a number the conversation never held, is replaced by one that says what failed.

In a first turn (the conversation ends with the user's message), with `auto`:
- a call that guesses a value another offered tool gives (an ISBN, with a tool that looks books up by
  title and names the ISBN) becomes a forced call to that tool;
- a call that guesses a value nobody said, or passes a value the question labels as another tool's, is
  asked again: without the schema example it copied, then without its tool (at most `reselections` times);
- keys its tool's schema does not declare are dropped; a word the question spelled ("Lisbon") is passed
  as spelled there, not respelled ("Lisboa");
- a call none of whose argument values appear in the conversation, to a tool whose name and description
  share no word with the question, is a guess at a question no tool fits: it is dropped and the model
  answers without tools;
- a prose reply to a question that names one tool by two of its words is replaced by a forced call to it;
- a prose reply that names one offered tool as an identifier ("call the `track_package` function")
  becomes a forced call to it, checked like any first call.

Every generation the policy adds to a request offers the tools as the template's JSON, even when the first
attempt had compact signatures (`_again`).

Stream and complete agree by construction (a backend's complete collects its stream), and the usage of
the finish event sums every generation the policy ran.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from fncall.llms.answering.calls import (
    asks_for_more,
    conversation_text,
    feeds_own_output,
    fits_schema,
    mentions_tool,
    new_calls,
    open_words,
    retargeted,
    said_values,
    tool_named,
    uses_a_result,
)
from fncall.llms.answering.facts import (
    invented_numbers,
    missing_facts,
    repair_sentence,
    result_facts,
    states_failure,
)
from fncall.llms.answering.first_turn import (
    copied_from_schema,
    described_tool,
    guessed_values,
    is_grounded,
    mislabelled_values,
    named_tool,
    producer_of,
    respelled_as_asked,
    without_examples,
    without_undeclared_arguments,
)
from fncall.llms.answering.prompt import answer_messages, error_text, follow_up_messages
from fncall.llms.answering.tool_turn import ToolExchange, ToolTurn, call_key, parse_json, read_tool_turn
from fncall.llms.base import StreamAssembler, events_from_completion
from fncall.types import (
    Completion,
    FinishEvent,
    FinishReason,
    GenerationParams,
    Message,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)

Generate = Callable[
    [Sequence[Message], Sequence[ToolSpec], ToolChoice, GenerationParams], AsyncIterator[StreamEvent]
]
"""A backend's raw generation: the LLM protocol's `stream` signature."""

_CALL_OBJECT = re.compile(r"\{\s*\"(name|function|tool|arguments|parameters)\"\s*:")
_CALL_MARKERS = ("<tool_call>", "<tool_response>", "</tool_call>", "[TOOL_CALLS]", "<|python_tag|>")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_JSON_START = re.compile(r"[{\[`]")


@dataclass(frozen=True)
class AnswerPolicy:
    """Settings of the policy (see the module docstring).

    verify: check answers against the results' values and repair them.
    screen_first_calls: drop a first-turn call whose arguments the conversation never mentions.
    reselections: how many times a first-turn call that guesses a value nobody said is asked again (without
      the schema example it copied, or without its tool); 0 turns this off.
    answer_max_tokens: the answer step's token budget when the request sets none, and the proposal's.
    proposal_max_calls: calls a proposal after results may write before generation stops.
    """

    verify: bool = True
    screen_first_calls: bool = True
    reselections: int = 3
    answer_max_tokens: int = 160
    proposal_max_calls: int = 1

    async def stream(
        self,
        generate: Generate,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """The events of one request with the policy applied (the raw events where it does not apply)."""
        params = params or GenerationParams()
        turn = read_tool_turn(messages)
        if not _policy_applies(tool_choice, params):
            source = generate(messages, tools, tool_choice, params)
        elif turn is not None:
            source = self._after_results(generate, messages, turn, tools, tool_choice, params)
        elif tools and tool_choice == "auto" and self.screen_first_calls:
            source = self._first_turn(generate, messages, tools, params)
        else:
            source = generate(messages, tools, tool_choice, params)
        async with aclosing(source):
            async for event in source:
                yield event

    # ----------------------------------------------------------------------------------- first turn

    async def _first_turn(
        self,
        generate: Generate,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        params: GenerationParams,
    ) -> AsyncIterator[StreamEvent]:
        """Text streams as it comes, unless the question names a tool; calls are held until the end, then
        checked (see `_checked_calls`). Measured on Qwen2.5-Coder-0.5B: asked which cables a shop sells with a
        shop-search tool offered, it invents a catalogue in prose; when the question names one tool by two of
        its words and the model answers without calling it, that tool is called (a forced call)."""
        question = _question(messages)
        expected = named_tool(question, tools)
        streamed: list[str] = []
        held: list[StreamEvent] = []
        completion: Completion | None = None
        async with aclosing(generate(messages, tools, "auto", params)) as events:
            async for event in events:
                if isinstance(event, FinishEvent):
                    completion = event.completion
                    break
                if isinstance(event, TextDeltaEvent) and not held and expected is None:
                    streamed.append(event.text)
                    yield event
                else:
                    held.append(event)
        completion = completion or _assembled(held)
        if not completion.message.tool_calls and expected is not None:
            forced = await _collect(generate(messages, [expected], {"name": expected.name}, _again(params)))
            calls = [without_undeclared_arguments(call, [expected]) for call in forced.message.tool_calls]
            if calls and all(fits_schema(call, [expected]) for call in calls):
                for event in events_from_completion(
                    _with_calls(forced, calls, completion.usage + forced.usage)
                ):
                    yield event
                return
            completion = completion.model_copy(update={"usage": completion.usage + forced.usage})
        described = described_tool(completion.message.text, tools) if expected is None else None
        if not completion.message.tool_calls and described is not None:
            # the prose described a call: make it, and let the checks below judge it like any first call
            forced = await _collect(generate(messages, [described], {"name": described.name}, _again(params)))
            message = Message.assistant(completion.message.text or None, forced.message.tool_calls)
            completion = forced.model_copy(
                update={"message": message, "usage": completion.usage + forced.usage}
            )
        if not completion.message.tool_calls:
            for event in held:
                yield event
            yield FinishEvent(completion=completion)
            return
        checked, usage = await self._checked_calls(generate, messages, tools, params, completion)
        if checked is not None:
            text = "".join(streamed) or None
            final = checked.model_copy(
                update={"message": Message.assistant(text, checked.message.tool_calls)}
            )
            for event in events_from_completion(final):
                if not isinstance(event, TextDeltaEvent):
                    yield event
            return
        text = completion.message.text
        for event in held:
            if isinstance(event, TextDeltaEvent):
                yield event
        model = completion.model
        finish: FinishReason = "stop"
        if not text.strip():
            pieces: list[str] = []
            async with aclosing(generate(messages, (), "none", params)) as events:
                async for event in events:
                    if isinstance(event, FinishEvent):
                        usage += event.completion.usage
                        finish = event.completion.finish_reason
                        model = event.completion.model or model
                    elif isinstance(event, TextDeltaEvent) and event.text:
                        pieces.append(event.text)
                        yield event
            text = "".join(pieces)
        message = Message.assistant(text or None)
        yield FinishEvent(
            completion=Completion(message=message, finish_reason=finish, usage=usage, model=model)
        )

    async def _checked_calls(
        self,
        generate: Generate,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        params: GenerationParams,
        proposal: Completion,
    ) -> tuple[Completion | None, Usage]:
        """The first turn's calls to make, or None when no tool fits the question (answer without tools),
        and the usage of every generation so far.

        Keys the schema does not declare are dropped and words the question spelled are spelled its way.
        A call that guesses what another tool gives (`producer_of`) becomes a forced call to that tool. A
        call with a suspect value (guessed, or labelled by the question as another tool's) is asked again,
        without the schema example it copied or without its tool (`_next_offer`), and gives way to a retry
        without suspect values; otherwise calls none of whose values or tools the question mentions are a
        guess at a question no tool fits."""
        question = _question(messages)
        calls = [_cleaned(call, tools, question) for call in proposal.message.tool_calls]
        usage = proposal.usage
        known = conversation_text(messages)
        producer = next(
            (
                found
                for call in calls
                if (found := producer_of(call, guessed_values(call, known, tools), tools))
            ),
            None,
        )
        if producer is not None:
            forced = await _collect(generate(messages, [producer], {"name": producer.name}, _again(params)))
            usage += forced.usage
            made = [_cleaned(call, [producer], question) for call in forced.message.tool_calls]
            if made and all(
                fits_schema(call, [producer]) and not _suspect_values(call, known, question, tools)
                for call in made
            ):
                return _with_calls(forced, made, usage), usage
        offered = list(tools)
        attempt = calls
        for _ in range(self.reselections):
            guesses = {call.name: _suspect_values(call, known, question, offered) for call in attempt}
            guesses = {name: values for name, values in guesses.items() if values}
            if not guesses:
                break
            offered = _next_offer(offered, guesses)
            if not offered:
                break
            retry = await _collect(generate(messages, offered, "auto", _again(params)))
            usage += retry.usage
            attempt = [_cleaned(call, offered, question) for call in retry.message.tool_calls]
            if not attempt or not all(fits_schema(call, offered) for call in attempt):
                break
            if not any(_suspect_values(call, known, question, offered) for call in attempt):
                return _with_calls(retry, attempt, usage), usage
        if any(_fits_question(call, known, question, tools) for call in calls):
            return _with_calls(proposal, calls, usage), usage
        return None, usage

    # ---------------------------------------------------------------------------------- after results

    async def _after_results(
        self,
        generate: Generate,
        messages: Sequence[Message],
        turn: ToolTurn,
        tools: Sequence[ToolSpec],
        tool_choice: ToolChoice,
        params: GenerationParams,
    ) -> AsyncIterator[StreamEvent]:
        usage = Usage()
        model: str | None = None
        failed = any(exchange.is_error for exchange in turn.latest)
        words = open_words(turn, tools) if tools and tool_choice == "auto" and not failed else set()
        if words:
            proposal = await _collect(generate(messages, tools, tool_choice, self._proposal_params(params)))
            usage += proposal.usage
            model = proposal.model
            kept = self.calls_worth_running(proposal.message.tool_calls, turn, tools, words)
            if not kept:
                kept, extra = await self._instead_of_repeats(
                    generate, messages, turn, tools, params, proposal, words
                )
                usage += extra
            if kept:
                message = proposal.message.model_copy(update={"tool_calls": kept})
                for event in events_from_completion(
                    proposal.model_copy(update={"message": message, "usage": usage})
                ):
                    yield event
                return
            if self._is_grounded_answer(proposal.message.text, turn):
                completion = Completion(
                    message=Message.assistant(proposal.message.text.strip()),
                    finish_reason=proposal.finish_reason if proposal.finish_reason == "length" else "stop",
                    usage=usage,
                    model=model,
                )
                for event in events_from_completion(completion):
                    yield event
                return
        answer = _AnswerText()
        async for event in self._answer(generate, turn, params, answer):
            yield event
        yield FinishEvent(
            completion=Completion(
                message=Message.assistant(answer.text or None),
                finish_reason=answer.finish_reason,
                usage=usage + answer.usage,
                model=answer.model or model,
            )
        )

    async def _instead_of_repeats(
        self,
        generate: Generate,
        messages: Sequence[Message],
        turn: ToolTurn,
        tools: Sequence[ToolSpec],
        params: GenerationParams,
        proposal: Completion,
        words: set[str],
    ) -> tuple[list[ToolCall], Usage]:
        """The calls to make when a proposal only repeats answered calls while the question still has open
        words: the repeat pointed at the record the question names (`retargeted`), else a second proposal
        in a fresh turn (`follow_up_messages`) without the repeated tools. Measured on Qwen2.5-Coder-0.5B:
        after a share price in yen it asks for the same price again instead of converting it to the dollars
        the question wants; offered the other tools in the full conversation, it repeats the call as text or
        (made to call) looks up the country; in the fresh turn it converts. There it also converts listed
        prices into euros nobody asked for: its calls must use only values that were said (`said_values`)."""
        repeats = [call for call in proposal.message.tool_calls if call_key(call) in turn.answered]
        if not repeats:
            return [], Usage()
        for call in repeats:
            target = retargeted(call, turn, tools, words)
            if target is not None and self.calls_worth_running([target], turn, tools, words):
                return [target], Usage()
        repeated = {call.name for call in repeats}
        others = [tool for tool in tools if tool.name not in repeated]
        if not others:
            return [], Usage()
        asked = follow_up_messages(turn)
        retry = await _collect(generate(asked, others, "auto", self._proposal_params(params)))
        calls = [call for call in retry.message.tool_calls if said_values(call, turn)]
        return self.calls_worth_running(calls, turn, others, words), retry.usage

    def _proposal_params(self, params: GenerationParams) -> GenerationParams:
        """Measured on Qwen2.5-Coder-0.5B after a result: it writes the answered call again and again, or a
        dozen calls in a row, until its token budget runs out (8-40 s on 2 cores). Calls past the first
        were repeats or fan-out, and prose past the answer's length is not an answer: stop there. With
        tools as compact signatures it echoes the result's JSON instead of making the next call (dependent
        calls 2/7 in the grounding evaluation); with the template's JSON it calls (see `_again`)."""
        limit = min(params.max_tokens or self.answer_max_tokens, self.answer_max_tokens)
        return _again(params).model_copy(
            update={"max_tokens": limit, "max_tool_calls": self.proposal_max_calls}
        )

    def calls_worth_running(
        self,
        calls: Sequence[ToolCall],
        turn: ToolTurn,
        tools: Sequence[ToolSpec],
        words: set[str],
    ) -> list[ToolCall]:
        """The proposed calls to pass on after results: new, valid, needing a result's value, not feeding a
        tool its own output, and still asked for by the question, whose `open_words` are `words`."""
        return [
            call
            for index, call in enumerate(new_calls(calls, turn))
            if fits_schema(call, tools)
            and uses_a_result(call, turn)
            and not feeds_own_output(call, turn)
            and asks_for_more(call, turn, tools, words, first=index == 0)
        ]

    async def _answer(
        self, generate: Generate, turn: ToolTurn, params: GenerationParams, answer: _AnswerText
    ) -> AsyncIterator[StreamEvent]:
        """One answer step per result of the last round, their texts joined; each verified."""
        answer_params = params.model_copy(
            update={
                "max_tokens": params.max_tokens or self.answer_max_tokens,
                "response_format": None,
                "constrained": None,
            }
        )
        for focus in turn.latest:
            separator = " " if answer.text else ""
            step = _AnswerText()
            if focus.is_error:
                # held back until checked: an answer after an error that invents a value is replaced
                async for _ in self._answer_step(generate, turn, focus, answer_params, step):
                    pass
                text = self._checked_error_answer(step.text, turn, focus)
                yield TextDeltaEvent(text=separator + text)
            else:
                sent: list[str] = []
                async for delta in self._answer_step(generate, turn, focus, answer_params, step):
                    sent.append(delta)
                    yield TextDeltaEvent(text=(separator if len(sent) == 1 else "") + delta)
                shown = "".join(sent)
                held = step.text[len(shown) :]  # held back because it might be JSON
                if held and is_echo(step.text):
                    held = ""
                text = shown + held
                repair = self._repair(text, turn, focus)
                if repair:
                    text += ("" if not text or text[-1].isspace() else " ") + repair
                tail = text[len(shown) :]
                if tail:
                    yield TextDeltaEvent(text=(separator if not shown else "") + tail)
            answer.add(separator + text, step)

    async def _answer_step(
        self,
        generate: Generate,
        turn: ToolTurn,
        focus: ToolExchange,
        params: GenerationParams,
        step: _AnswerText,
    ) -> AsyncIterator[str]:
        """One tools-free answer step. Yields its text as it comes, up to the first character that may
        open JSON (the rest is held back for the caller to check); `step` gets all text and the usage."""
        pieces: list[str] = []
        holding = False
        async with aclosing(generate(answer_messages(turn, focus), (), "none", params)) as events:
            async for event in events:
                if isinstance(event, TextDeltaEvent) and event.text:
                    text = event.text if pieces else event.text.lstrip()
                    if not text:
                        continue
                    pieces.append(text)
                    if holding:
                        continue
                    opening = _JSON_START.search(text)
                    if opening:
                        holding = True
                        text = text[: opening.start()]
                    if text:
                        yield text
                elif isinstance(event, FinishEvent):
                    step.usage = event.completion.usage
                    step.model = event.completion.model
                    step.finish_reason = event.completion.finish_reason
        step.text = "".join(pieces).rstrip()

    # ---------------------------------------------------------------------------------- verification

    def _repair(self, text: str, turn: ToolTurn, focus: ToolExchange) -> str:
        """The sentence that adds the values the answer left out ("" when none are missing)."""
        if not self.verify:
            return ""
        missing = missing_facts(text, result_facts(focus, known_text=turn.question))
        return repair_sentence(missing) if missing else ""

    def _checked_error_answer(self, text: str, turn: ToolTurn, focus: ToolExchange) -> str:
        fallback = f"The tool {focus.call.name} failed: {error_text(focus)}"
        if not text:
            return fallback
        if not self.verify:
            return text
        if is_echo(text) or not states_failure(text) or invented_numbers(text, _known_text(turn)):
            return fallback
        return text

    def _is_grounded_answer(self, text: str, turn: ToolTurn) -> bool:
        """Whether a proposal's prose already answers: no echo, no error to report, every value stated."""
        if not text.strip() or is_echo(text) or not turn.latest:
            return False
        facts = [fact for focus in turn.latest for fact in result_facts(focus, known_text=turn.question)]
        return bool(facts) and not missing_facts(text, facts)


@dataclass
class _AnswerText:
    """What the answer steps produced so far."""

    text: str = ""
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    finish_reason: FinishReason = "stop"

    def add(self, text: str, step: _AnswerText) -> None:
        self.text += text
        self.usage = self.usage + step.usage
        self.model = self.model or step.model
        if step.finish_reason == "length":
            self.finish_reason = "length"


def is_echo(text: str) -> bool:
    """Whether an answer is (or contains) a call or a result as JSON rather than prose."""
    if any(marker in text for marker in _CALL_MARKERS) or _CALL_OBJECT.search(text):
        return True
    if text.lstrip().startswith("```"):
        return True
    if isinstance(parse_json(_FENCE.sub("", text.strip())), dict | list):
        return True
    return any(isinstance(parse_json(match), dict | list) for match in _json_spans(text))


def _json_spans(text: str) -> list[str]:
    """Candidate JSON objects and arrays inside text: from each `{` or `[` to its last closing partner."""
    spans = []
    for start, opener in ((match.start(), match.group()) for match in re.finditer(r"[{\[]", text)):
        closer = "}" if opener == "{" else "]"
        end = text.rfind(closer)
        if end > start:
            spans.append(text[start : end + 1])
    return spans


def _policy_applies(tool_choice: ToolChoice, params: GenerationParams) -> bool:
    """The client did not demand a call (`required`, a named tool) nor a JSON response."""
    if params.response_format and params.response_format.get("type") != "text":
        return False
    return tool_choice in ("auto", "none")


def _again(params: GenerationParams) -> GenerationParams:
    """Settings for every generation the policy adds to a request (forced calls, re-asks, proposals): tools
    in the template's JSON even where the first attempt had compact signatures. Measured on
    Qwen2.5-Coder-0.5B: offered compact signatures again, it describes the call in prose or echoes a result
    instead of calling (grounding dependent calls 2/7, against 6/7 with the template's JSON). The price: such
    a generation shares only the system text with a compact first attempt, so its prompt is evaluated anew."""
    return params.model_copy(update={"compact_tools": False})


async def _collect(events: AsyncIterator[StreamEvent]) -> Completion:
    held: list[StreamEvent] = []
    async with aclosing(events):
        async for event in events:
            if isinstance(event, FinishEvent):
                return event.completion
            held.append(event)
    return _assembled(held)


def _assembled(events: Sequence[StreamEvent]) -> Completion:
    assembler = StreamAssembler()
    for event in events:
        assembler.add(event)
    message = assembler.message()
    return Completion(message=message, finish_reason="tool_calls" if message.tool_calls else "stop")


def _fits_question(call: ToolCall, known: str, question: str, tools: Sequence[ToolSpec]) -> bool:
    """A first-turn call fits unless both its arguments (against the conversation's text, `known`) and its
    tool are foreign to the question."""
    if is_grounded(call, known):
        return True
    tool = tool_named(tools, call.name)
    return tool is not None and mentions_tool(question, tool)


def _question(messages: Sequence[Message]) -> str:
    """The last user message's text: the question a first turn answers."""
    return next((message.text for message in reversed(messages) if message.role == "user"), "")


def _suspect_values(
    call: ToolCall, known: str, question: str, tools: Sequence[ToolSpec]
) -> list[str | int | float]:
    """Values of a first-turn call that make it worth asking again: guessed, or labelled by the question as
    another tool's."""
    return [*guessed_values(call, known, tools), *mislabelled_values(call, question, tools)]


def _next_offer(tools: list[ToolSpec], guesses: dict[str, list[str | int | float]]) -> list[ToolSpec]:
    """The tools to offer after calls that guessed: when a guess was copied from its tool's own schema (an
    example), the same tools without those examples (in any tool: they share them, "City name, e.g. Paris");
    otherwise the tools without the guessing ones."""
    copied = [
        value
        for name, values in guesses.items()
        for tool in tools
        if tool.name == name
        for value in values
        if copied_from_schema(value, tool)
    ]
    if copied:
        return [without_examples(tool, copied) for tool in tools]
    return [tool for tool in tools if tool.name not in guesses]


def _cleaned(call: ToolCall, tools: Sequence[ToolSpec], question: str) -> ToolCall:
    """A first-turn call without undeclared keys and with the question's spelling of its words."""
    return respelled_as_asked(without_undeclared_arguments(call, tools), question)


def _with_calls(completion: Completion, calls: list[ToolCall], usage: Usage) -> Completion:
    """A completion that makes these calls and says nothing else."""
    return completion.model_copy(
        update={"message": Message.assistant(None, calls), "finish_reason": "tool_calls", "usage": usage}
    )


def _known_text(turn: ToolTurn) -> str:
    """Everything the conversation says for this question: what an answer may quote numbers from."""
    parts = [turn.question, turn.system or ""]
    for exchange in turn.exchanges:
        parts.append(exchange.call.arguments_json())
        parts.append(exchange.content)
    return "\n".join(parts)
