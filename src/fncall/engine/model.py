"""One loaded GGUF model and token generation over it.

We drive `llama_cpp.Llama` at the token level instead of through its completion API, so that we own the
three things the completion API hides: how much of the KV cache is reused between requests (counted, so
tests can assert it), how the grammar is applied (checked after sampling, the full-vocabulary mask only
when the sampled token is rejected), and when to stop (per-token cancellation, stop strings, the context).

Not thread-safe: llama.cpp contexts are not. One worker thread owns a LocalModel (see `engine.queue`).
"""

from __future__ import annotations

import codecs
import ctypes
import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import llama_cpp
import numpy as np

from fncall.engine.prefix_cache import PrefixCache, common_prefix_length
from fncall.errors import ConfigError, InvalidRequestError

if TYPE_CHECKING:
    from fncall.formats.chat import ChatFormat, ChatTemplate

GenerationFinish = Literal["stop", "length", "cancelled"]
_TEMPLATE_KEY = "tokenizer.chat_template"
DEFAULT_PREFIX_CACHE_BYTES = 128 * 1024 * 1024
_WORTH_RESTORING = 32
"""Tokens a snapshot must hold beyond what the context holds to be restored (a restore costs a few ms,
about what evaluating this many tokens costs)."""


@dataclass(frozen=True)
class SamplingSettings:
    """How to pick each token. temperature 0 is greedy; `seed` None draws a random one."""

    temperature: float = 0.0
    top_p: float = 1.0
    min_p: float = 0.05
    seed: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    banned_tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class GrammarConstraint:
    """A GBNF grammar; with `triggers` (regexes over the output) it applies only once one matches.
    `param`: the request field it was built from, named when llama.cpp cannot compile it."""

    gbnf: str
    root: str = "root"
    triggers: tuple[str, ...] = ()
    param: str = "tools"


@dataclass(frozen=True)
class GeneratedToken:
    token: int
    text: str


@dataclass
class EngineCounters:
    """Totals since load: how much prompt work the KV cache saved."""

    requests: int = 0
    prompt_tokens_evaluated: int = 0
    prompt_tokens_reused: int = 0
    completion_tokens: int = 0
    prefix_restores: int = 0


@dataclass
class Generation:
    """One generation: iterate it (on the model's thread) for tokens; afterwards it holds the outcome."""

    _model: LocalModel
    prompt: list[int]
    sampling: SamplingSettings
    grammar: GrammarConstraint | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    finish_reason: GenerationFinish | None = None
    reused_tokens: int = 0
    restored_tokens: int = 0
    evaluated_tokens: int = 0
    completion_tokens: int = 0
    text: str = ""
    stop_matched: str | None = None

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt)

    def __iter__(self) -> Iterator[GeneratedToken]:
        return self._model._run(self)


class LocalModel:
    """A GGUF model loaded once: tokenizer, chat template and format from its metadata, generation.

    `prefix_cache_bytes`: memory for KV snapshots of earlier sequences (0 turns them off), so a prompt
    that shares its system text and tools with an earlier request, not only the last one, skips them.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        chat_format: str | None = None,
        name: str | None = None,
        prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"No model file at {self.path}.")
        threads = n_threads or _available_cores()
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=False,
                verbose=False,
            )
        except ValueError as error:
            raise ConfigError(f"Could not load the model at {self.path}: {error}") from error
        self.name = name or self.path.stem
        self.n_ctx = self._llama.n_ctx()
        self.n_vocab = self._llama.n_vocab()
        self._vocab = self._llama._model.vocab
        self.counters = EngineCounters()
        metadata = self._llama.metadata
        self.chat_template_text: str | None = metadata.get(_TEMPLATE_KEY)
        self.bos_token = self.token_text(self._llama.token_bos())
        self.eos_token = self.token_text(self._llama.token_eos())
        self._add_bos = metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self._chat_format_name = chat_format
        self._candidates = _CandidateBuffer(self.n_vocab)
        self._prefix_cache = PrefixCache(prefix_cache_bytes) if prefix_cache_bytes > 0 else None
        self._token_scans: dict[tuple[str, ...], tuple[int, ...]] = {}
        self._chat_format: ChatFormat | None = None
        self._chat_template: ChatTemplate | None = None
        self._template_loaded = False

    # ------------------------------------------------------------------------ template and format

    @property
    def chat_format(self) -> ChatFormat:
        """The model family's chat format: the named one, else detected from the GGUF's template."""
        if self._chat_format is None:
            from fncall.formats.chat import detect_format, get_format

            if self._chat_format_name:
                self._chat_format = get_format(self._chat_format_name)
            else:
                self._chat_format = detect_format(self.chat_template_text or "")
        return self._chat_format

    @property
    def chat_template(self) -> ChatTemplate | None:
        """The GGUF's own Jinja chat template, ready to render (None when the file has none)."""
        if not self._template_loaded:
            from fncall.formats.chat import ChatTemplate

            self._template_loaded = True
            self._chat_template = (
                ChatTemplate(self.chat_template_text, bos_token=self.bos_token, eos_token=self.eos_token)
                if self.chat_template_text
                else None
            )
        return self._chat_template

    # -------------------------------------------------------------------------------- tokenizer

    def tokenize(self, text: str) -> list[int]:
        """Prompt text to tokens; special tokens in the text (`<|im_start|>`) become their ids."""
        add_bos = self._add_bos and not (self.bos_token and text.startswith(self.bos_token))
        return self._llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def token_bytes(self, token: int) -> bytes:
        buffer = ctypes.create_string_buffer(64)
        size = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, 64, 0, True)
        if size < 0:
            buffer = ctypes.create_string_buffer(-size)
            size = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, -size, 0, True)
        return buffer.raw[:size]

    def token_text(self, token: int) -> str:
        return self.token_bytes(token).decode("utf-8", errors="replace") if token >= 0 else ""

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def tokens_starting(self, prefixes: Sequence[str]) -> tuple[int, ...]:
        """Ids of tokens whose text (leading spaces aside) starts with one of `prefixes`: the tokens
        to ban so the model cannot write those markers. Scans the vocabulary once per prefix set."""
        key = tuple(sorted(prefix for prefix in prefixes if prefix))
        if key not in self._token_scans:
            found = []
            for token in range(self.n_vocab):
                if self.token_text(token).lstrip().startswith(key):
                    found.append(token)
            self._token_scans[key] = tuple(found)
        return self._token_scans[key]

    # ------------------------------------------------------------------------------- generation

    def generation(
        self,
        prompt: str | Sequence[int],
        sampling: SamplingSettings | None = None,
        grammar: GrammarConstraint | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        """A generation to iterate. Raises InvalidRequestError now if the prompt cannot fit the context."""
        tokens = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        if not tokens:
            raise InvalidRequestError("The prompt is empty: send at least one message.", param="messages")
        if len(tokens) >= self.n_ctx:
            raise InvalidRequestError(
                f"The prompt is {len(tokens)} tokens but the model's context holds {self.n_ctx}; "
                "shorten the conversation or the tool list, or load the model with a larger n_ctx.",
                param="messages",
                code="context_length_exceeded",
            )
        return Generation(self, tokens, sampling or SamplingSettings(), grammar, cancel or threading.Event())

    def _run(self, job: Generation) -> Iterator[GeneratedToken]:
        llama = self._llama
        self._evaluate_prompt(job)
        budget = self.n_ctx - len(job.prompt)
        if job.sampling.max_tokens is not None:
            budget = min(budget, job.sampling.max_tokens)
        sampler = _Sampler(self, job.sampling, job.grammar)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = _StopMatcher(job.sampling.stop)
        pieces: list[str] = []
        try:
            while True:
                if job.cancel.is_set():
                    job.finish_reason = "cancelled"
                    break
                if job.completion_tokens >= budget:
                    job.finish_reason = "length"
                    break
                token = sampler.next_token()
                if token is None or self.is_end_of_generation(token):
                    job.finish_reason = "stop"
                    break
                job.completion_tokens += 1
                text, stopped = stops.feed(decoder.decode(self.token_bytes(token)))
                pieces.append(text)
                yield GeneratedToken(token, text)
                if stopped:
                    job.finish_reason = "stop"
                    break
                if job.completion_tokens < budget and not job.cancel.is_set():
                    llama.eval([token])
            if job.finish_reason != "stop" or not stops.stopped:
                tail = stops.flush(decoder.decode(b"", final=True))
                if tail:
                    pieces.append(tail)
                    yield GeneratedToken(-1, tail)
        finally:
            sampler.close()
            job.text = "".join(pieces)
            job.stop_matched = stops.matched
            self.counters.completion_tokens += job.completion_tokens

    def _evaluate_prompt(self, job: Generation) -> None:
        """Evaluate only the part of the prompt the KV cache does not already hold, starting from a
        snapshot of an earlier sequence when that holds more of it."""
        llama = self._llama
        cached = llama.input_ids[: llama.n_tokens].tolist()
        reuse = common_prefix_length(cached, job.prompt)
        if self._prefix_cache is not None:
            reuse = self._reuse_snapshot(job, cached, reuse)
        if reuse == len(job.prompt):
            reuse -= 1  # the last prompt token must be evaluated again to get fresh logits
        if reuse < llama.n_tokens:
            llama._ctx.kv_cache_seq_rm(-1, reuse, -1)
        llama.n_tokens = reuse
        llama.eval(job.prompt[reuse:])
        job.reused_tokens = reuse
        job.evaluated_tokens = len(job.prompt) - reuse
        self.counters.requests += 1
        self.counters.prompt_tokens_reused += reuse
        self.counters.prompt_tokens_evaluated += job.evaluated_tokens

    def _reuse_snapshot(self, job: Generation, cached: list[int], reuse: int) -> int:
        """Keep the sequence this prompt is about to cut, and restore the snapshot that shares more of the
        prompt than the context does; returns how much of the prompt the context now holds."""
        cache, ctx = self._prefix_cache, self._llama._ctx.ctx
        assert cache is not None
        length, key = cache.best(job.prompt)
        if length <= reuse + _WORTH_RESTORING:
            key = None
        if reuse < len(cached):
            cache.save(ctx, cached, keep=key)
        if key is None:
            return reuse
        if not cache.restore(ctx, key):
            self._llama.n_tokens = 0
            return 0
        self._llama.input_ids[: len(key)] = key
        self._llama.n_tokens = len(key)
        job.restored_tokens = length
        self.counters.prefix_restores += 1
        return length

    def close(self) -> None:
        self._llama.close()


# ---------------------------------------------------------------------------------------- helpers


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _StopMatcher:
    """Holds back text that might be the start of a stop string, and cuts the text at a full one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._held = ""
        self.stopped = False
        self.matched: str | None = None

    def feed(self, text: str) -> tuple[str, bool]:
        if not self._stops:
            return text, False
        held = self._held + text
        found = [(index, stop) for stop in self._stops if (index := held.find(stop)) >= 0]
        if found:
            cut, self.matched = min(found, key=lambda hit: (hit[0], -len(hit[1])))
            self._held = ""
            self.stopped = True
            return held[:cut], True
        keep = max((_overlap(held, stop) for stop in self._stops), default=0)
        self._held = held[len(held) - keep :] if keep else ""
        return held[: len(held) - keep], False

    def flush(self, text: str) -> str:
        rest, self._held = self._held + text, ""
        return rest


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of `text` that is a proper start of `stop`."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-size:]):
            return size
    return 0


class _CandidateBuffer:
    """A reusable llama_token_data array over the whole vocabulary (allocating one per token is slow)."""

    def __init__(self, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self._storage = (llama_cpp.llama_token_data * n_vocab)()
        self._view = np.ctypeslib.as_array(self._storage)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._single = (llama_cpp.llama_token_data * 1)()

    def full(self, logits: ctypes._Pointer) -> llama_cpp.llama_token_data_array:
        values = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        self._view["id"] = self._ids
        self._view["logit"] = values
        self._view["p"] = 0.0
        return llama_cpp.llama_token_data_array(
            data=self._storage, size=self.n_vocab, selected=-1, sorted=False
        )

    def single(self, token: int) -> llama_cpp.llama_token_data_array:
        self._single[0].id = token
        self._single[0].logit = 1.0
        self._single[0].p = 0.0
        return llama_cpp.llama_token_data_array(data=self._single, size=1, selected=-1, sorted=False)

    def token_at(self, array: llama_cpp.llama_token_data_array) -> tuple[int, float]:
        entry = array.data[array.selected]
        return int(entry.id), float(entry.logit)


class _Sampler:
    """A llama.cpp sampler chain plus an optional grammar, applied "sample first, check after".

    Masking the whole vocabulary with a grammar costs about as much as the forward pass on a small
    model, yet the token the model prefers is usually allowed. So the chain samples freely, the grammar
    checks only that one token, and the full mask runs only when the token is rejected.
    """

    def __init__(self, model: LocalModel, settings: SamplingSettings, grammar: GrammarConstraint | None):
        self._model = model
        self._ctx = model._llama._ctx.ctx
        self._candidates = model._candidates
        self._chain = _build_chain(model.n_vocab, settings)
        self._grammar = _build_grammar(model, grammar) if grammar else None

    def next_token(self) -> int | None:
        """The next token, or None when the grammar allows nothing (the constrained part is done)."""
        if self._grammar is None:
            return int(llama_cpp.llama_sampler_sample(self._chain, self._ctx, -1))
        logits = llama_cpp.llama_get_logits_ith(self._ctx, -1)
        candidates = self._candidates.full(logits)
        llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(candidates))
        token, _ = self._candidates.token_at(candidates)
        check = self._candidates.single(token)
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(check))
        if math.isinf(check.data[0].logit):
            candidates = self._candidates.full(logits)
            llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(candidates))
            llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(candidates))
            token, logit = self._candidates.token_at(candidates)
            if math.isinf(logit):
                return None
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain, token)
        return token

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self._chain)
        if self._grammar is not None:
            llama_cpp.llama_sampler_free(self._grammar)


def _build_chain(n_vocab: int, settings: SamplingSettings) -> llama_cpp.llama_sampler_p:
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    if settings.banned_tokens:
        biases = (llama_cpp.llama_logit_bias * len(settings.banned_tokens))()
        for index, token in enumerate(settings.banned_tokens):
            biases[index].token = token
            biases[index].bias = -math.inf
        llama_cpp.llama_sampler_chain_add(
            chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(settings.banned_tokens), biases)
        )
    if settings.temperature <= 0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    seed = llama_cpp.LLAMA_DEFAULT_SEED if settings.seed is None else settings.seed & 0xFFFFFFFF
    for sampler in (
        llama_cpp.llama_sampler_init_top_k(64),
        llama_cpp.llama_sampler_init_top_p(settings.top_p, 1),
        llama_cpp.llama_sampler_init_min_p(settings.min_p, 1),
        llama_cpp.llama_sampler_init_temp(settings.temperature),
        llama_cpp.llama_sampler_init_dist(seed),
    ):
        llama_cpp.llama_sampler_chain_add(chain, sampler)
    return chain


def _build_grammar(model: LocalModel, grammar: GrammarConstraint) -> llama_cpp.llama_sampler_p:
    text, root = grammar.gbnf.encode("utf-8"), grammar.root.encode("utf-8")
    if grammar.triggers:
        patterns = (ctypes.c_char_p * len(grammar.triggers))(*(p.encode("utf-8") for p in grammar.triggers))
        no_tokens = (llama_cpp.llama_token * 0)()
        sampler = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
            model._vocab, text, root, patterns, len(grammar.triggers), no_tokens, 0
        )
    else:
        sampler = llama_cpp.llama_sampler_init_grammar(model._vocab, text, root)
    if not sampler:
        if grammar.param == "grammar":
            raise InvalidRequestError("The grammar is not valid GBNF (llama.cpp cannot parse it).", "grammar")
        raise InvalidRequestError(
            "The tools' or response format's JSON schema could not be turned into a grammar; "
            "simplify the schema (plain types, enums, required properties).",
            param=grammar.param,
        )
    return sampler
