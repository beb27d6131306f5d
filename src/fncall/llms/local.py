"""The embedded local engine as an LLM backend: a GGUF model in this process, tool calls parsed and
(where the policy says so) constrained by a grammar.

One path serves both `stream` and `complete` (complete collects the stream), so the two give the same
result for the same seed. Generation runs on the model's own thread behind a bounded queue. When a
conversation ends with tool results, the answer policy (`fncall.llms.answering`) decides what the reply is:
small local models otherwise repeat the call or echo the result as JSON.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fncall.engine.grammar import ConstraintPlan, call_grammar, opener_for_trigger, plan_constraint
from fncall.engine.model import DEFAULT_PREFIX_CACHE_BYTES, Generation, LocalModel, SamplingSettings
from fncall.engine.models import MODELS, resolve
from fncall.engine.queue import GenerationQueue
from fncall.errors import ConfigError
from fncall.llms.answering import AnswerPolicy
from fncall.llms.base import BaseLLM, StreamAssembler
from fncall.types import (
    Completion,
    FinishEvent,
    FinishReason,
    GenerationParams,
    Message,
    StreamEvent,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolChoice,
    ToolSpec,
    Usage,
)

DEFAULT_N_CTX = 8192


@dataclass
class _Piece:
    """Text the model wrote (on the worker thread), on its way to the parser."""

    text: str


@dataclass
class _Outcome:
    """The last item of a job: why generation ended and what it cost."""

    finish: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class _Engine:
    model: LocalModel
    queue: GenerationQueue


_engines: dict[tuple[str, int, str | None, int | None, int], _Engine] = {}
_engines_lock = threading.Lock()


def load_engine(
    model: str | None = None,
    *,
    n_ctx: int = DEFAULT_N_CTX,
    chat_format: str | None = None,
    n_threads: int | None = None,
    max_waiting: int = 16,
    prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
) -> tuple[LocalModel, GenerationQueue]:
    """The process-wide model and queue for these settings, loaded on first use."""
    path = resolve(model)
    key = (str(path.resolve()), n_ctx, chat_format, n_threads, prefix_cache_bytes)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            name = model if model in MODELS else (model and Path(model).stem) or resolve_alias(path)
            loaded = LocalModel(
                path,
                n_ctx=n_ctx,
                n_threads=n_threads,
                chat_format=chat_format,
                name=name,
                prefix_cache_bytes=prefix_cache_bytes,
            )
            engine = _Engine(loaded, GenerationQueue(max_waiting=max_waiting))
            _engines[key] = engine
    return engine.model, engine.queue


def resolve_alias(path: Path) -> str:
    """The catalogue alias of a model file, or its file name."""
    for alias, source in MODELS.items():
        if source.filename == path.name:
            return alias
    return path.stem


class LocalLLM(BaseLLM):
    """A GGUF model run in-process (llama.cpp), speaking the LLM protocol.

    `constrain_auto`: whether `tool_choice="auto"` continues under a call grammar once a call starts.
    Off by default: measured on Qwen 0.5B it turned hallucinated calls (dropped by the lenient parser)
    into real wrong ones; the BFCL evaluation decides the default. `required` and named choices are
    always constrained. `default_temperature` applies when a request sets none (0 = greedy).
    `answer_policy`: how to answer after tool results (True: the default AnswerPolicy, False: the raw
    model, as the evaluation's baseline). `compact_tools`: offer tools as typed signatures instead of the
    template's JSON (a third to a half fewer prompt tokens; see `fncall.formats.chat.signatures`). On by
    default: on Qwen 0.5B it scored higher on BFCL and on the grounding evaluation, and faster; the answer
    policy's own extra generations still use the template's JSON.
    """

    reads_grammar = True

    def __init__(
        self,
        model: LocalModel,
        queue: GenerationQueue | None = None,
        *,
        constrain_auto: bool = False,
        default_temperature: float = 0.0,
        default_max_tokens: int = 1024,
        call_opener: str = "layout",
        answer_policy: AnswerPolicy | bool = True,
        compact_tools: bool = True,
    ) -> None:
        self.local_model = model
        self.compact_tools = compact_tools
        self.queue = queue or GenerationQueue()
        self.model = model.name
        self.constrain_auto = constrain_auto
        self.default_temperature = default_temperature
        self.default_max_tokens = default_max_tokens
        self.call_opener = call_opener
        self.answer_policy: AnswerPolicy | None = (
            AnswerPolicy() if answer_policy is True else answer_policy or None
        )

    @classmethod
    def load(
        cls,
        model: str | None = None,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        chat_format: str | None = None,
        n_threads: int | None = None,
        constrain_auto: bool = False,
        default_temperature: float = 0.0,
        answer_policy: AnswerPolicy | bool = True,
        compact_tools: bool = True,
        prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
    ) -> LocalLLM:
        """A backend over `model` (None: the default alias, an alias, a GGUF path), loaded once a process."""
        local_model, queue = load_engine(
            model,
            n_ctx=n_ctx,
            chat_format=chat_format,
            n_threads=n_threads,
            prefix_cache_bytes=prefix_cache_bytes,
        )
        return cls(
            local_model,
            queue,
            constrain_auto=constrain_auto,
            default_temperature=default_temperature,
            answer_policy=answer_policy,
            compact_tools=compact_tools,
        )

    # ------------------------------------------------------------------------------ the protocol

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        if self.answer_policy is None:
            events = self.generate(messages, tools, tool_choice, params)
        else:
            events = self.answer_policy.stream(self.generate, messages, tools, tool_choice, params)
        async with aclosing(events):
            async for event in events:
                yield event

    async def generate(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """One generation of the model, no answer policy: the prompt, the (constrained) tokens, the parse."""
        params = params or GenerationParams()
        chat_format = self.local_model.chat_format
        plan = plan_constraint(
            tools,
            tool_choice,
            chat_format.call_layout(),
            chat_format.triggers,
            parallel=params.parallel_tool_calls,
            constrain_auto=self.constrain_auto if params.constrained is None else params.constrained,
            response_format=params.response_format,
            opener=self.call_opener,
            grammar=params.grammar,
        )
        prompt = chat_format.render(
            list(messages),
            list(plan.prompt_tools),
            template=self.local_model.chat_template,
            add_generation_prompt=True,
            compact_tools=self.compact_tools if params.compact_tools is None else params.compact_tools,
        )
        first = self.local_model.generation(prompt, self._sampling(params, plan))
        parser = chat_format.stream_parser(list(plan.call_tools))
        job = self.queue.submit(lambda cancel: self._generate(first, prompt, plan, params, cancel))
        assembler = StreamAssembler()
        outcome: _Outcome | None = None
        enough_calls = False
        call_limit = 1 if not params.parallel_tool_calls else params.max_tool_calls or float("inf")
        try:
            async for item in job:
                if isinstance(item, _Outcome):
                    outcome = item
                    break
                for event in self._keep(parser.feed(item.text), params):
                    assembler.add(event)
                    yield event
                    if isinstance(event, ToolCallEndEvent) and len(assembler.ended) >= call_limit:
                        enough_calls = True
                if enough_calls:
                    job.cancel()  # every call that was asked for is written: stop generating
                    break
            truncated = outcome is not None and outcome.finish == "length"
            for event in self._keep(parser.finish(truncated=truncated), params):
                assembler.add(event)
                yield event
        finally:
            job.cancel()
        message = assembler.message()
        usage = Usage(
            prompt_tokens=first.prompt_tokens,
            completion_tokens=outcome.completion_tokens if outcome else first.completion_tokens,
            cached_prompt_tokens=first.reused_tokens,
        )
        yield FinishEvent(
            completion=Completion(
                message=message,
                finish_reason=_finish_reason(message, outcome),
                usage=usage,
                model=self.model,
            )
        )

    # -------------------------------------------------------------------------------- internals

    def _sampling(self, params: GenerationParams, plan: ConstraintPlan) -> SamplingSettings:
        stops = tuple(params.stop)
        if plan.constrain_after_trigger:
            stops += tuple(self.local_model.chat_format.triggers)
        return SamplingSettings(
            temperature=self.default_temperature if params.temperature is None else params.temperature,
            top_p=1.0 if params.top_p is None else params.top_p,
            seed=params.seed,
            max_tokens=params.max_tokens or self.default_max_tokens,
            stop=stops,
        )

    def _generate(
        self,
        first: Generation,
        prompt: str,
        plan: ConstraintPlan,
        params: GenerationParams,
        cancel: threading.Event,
    ) -> Iterator[_Piece | _Outcome]:
        """Runs on the model's thread: free text (or the plan's grammar), then, in constrained auto mode,
        the call from its trigger on under the call grammar."""
        first.cancel = cancel
        first.grammar = plan.grammar
        if plan.banned_prefixes:  # a vocabulary scan (cached): done here, off the event loop
            banned = self.local_model.tokens_starting(plan.banned_prefixes)
            first.sampling = replace(first.sampling, banned_tokens=banned)
        for token in first:
            if token.text:
                yield _Piece(token.text)
        completion_tokens = first.completion_tokens
        finish = first.finish_reason or "stop"
        trigger = first.stop_matched
        if plan.constrain_after_trigger and trigger is not None and trigger not in params.stop:
            layout = self.local_model.chat_format.call_layout()
            grammar = call_grammar(
                plan.call_tools,
                layout,
                parallel=params.parallel_tool_calls,
                opener=opener_for_trigger(trigger, layout),
            )
            budget = first.sampling.max_tokens
            remaining = None if budget is None else max(budget - completion_tokens, 1)
            settings = SamplingSettings(
                temperature=first.sampling.temperature,
                top_p=first.sampling.top_p,
                seed=first.sampling.seed,
                max_tokens=remaining,
            )
            call = self.local_model.generation(prompt + first.text, settings, grammar, cancel)
            for token in call:
                if token.text:
                    yield _Piece(token.text)
            completion_tokens += call.completion_tokens
            finish = call.finish_reason or "stop"
        yield _Outcome(finish, first.prompt_tokens, completion_tokens)

    @staticmethod
    def _keep(events: Sequence[StreamEvent], params: GenerationParams) -> list[StreamEvent]:
        """Drop calls after the first when parallel calls are off."""
        if params.parallel_tool_calls:
            return list(events)
        return [
            event
            for event in events
            if not isinstance(event, ToolCallStartEvent | ToolCallDeltaEvent | ToolCallEndEvent)
            or event.index == 0
        ]


def _finish_reason(message: Message, outcome: _Outcome | None) -> FinishReason:
    if message.tool_calls:
        return "tool_calls"
    if outcome is not None and outcome.finish == "length":
        return "length"
    return "stop"


def from_spec(rest: str) -> LocalLLM:
    """`local:`, `local:ALIAS`, `local:/path/model.gguf`, each with optional `?n_ctx=4096&format=hermes`
    (also `threads`, `constrain_auto`, `temperature`, `answer_policy=on|off`, `compact_tools=on|off`,
    `prefix_cache_mb`: memory for KV snapshots of earlier prompts, 0 turns them off)."""
    target, _, query = rest.strip().partition("?")
    options = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
    unknown = set(options) - set(_SPEC_OPTIONS)
    if unknown:
        raise ConfigError(
            f"Unknown option(s) {', '.join(sorted(unknown))} in 'local:{rest}'; "
            f"known: {', '.join(_SPEC_OPTIONS)}."
        )
    return LocalLLM.load(
        target or None,
        n_ctx=_int_option(options, "n_ctx", DEFAULT_N_CTX),
        chat_format=options.get("format") or None,
        n_threads=_int_option(options, "threads", None),
        constrain_auto=options.get("constrain_auto", "false").lower() in ("1", "true", "yes"),
        default_temperature=float(options.get("temperature", "0")),
        answer_policy=_switch_option(options, "answer_policy", True),
        compact_tools=_switch_option(options, "compact_tools", True),
        prefix_cache_bytes=_int_option(options, "prefix_cache_mb", DEFAULT_PREFIX_CACHE_BYTES >> 20) << 20,
    )


_SPEC_OPTIONS = (
    "n_ctx",
    "format",
    "threads",
    "constrain_auto",
    "temperature",
    "answer_policy",
    "compact_tools",
    "prefix_cache_mb",
)
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def _switch_option(options: dict[str, str], key: str, default: bool) -> bool:
    if key not in options:
        return default
    value = options[key].strip().lower()
    if value in _ON or value in _OFF:
        return value in _ON
    raise ConfigError(f"The local: option {key} must be on or off, not {options[key]!r}.")


def _int_option(options: dict[str, str], key: str, default: Any) -> Any:
    if key not in options:
        return default
    try:
        return int(options[key])
    except ValueError:
        raise ConfigError(f"The local: option {key} must be a whole number, not {options[key]!r}.") from None
