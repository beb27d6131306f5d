"""LocalModel on the real (tiny) SmolLM2 model: decoding, stops, limits, KV reuse, grammars, cancellation."""

from __future__ import annotations

import json

import jsonschema
import pytest

from fncall.engine.grammar import call_grammar
from fncall.engine.model import GrammarConstraint, LocalModel, SamplingSettings, _StopMatcher
from fncall.errors import ConfigError, InvalidRequestError
from fncall.formats.chat.base import CallLayout
from fncall.types import ToolSpec

PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n"
)


@pytest.fixture(scope="session")
def small_model() -> LocalModel:
    from fncall.llms.local import load_engine

    try:
        model, _ = load_engine("smollm2-135m", n_ctx=2048)
    except ConfigError as error:
        pytest.skip(str(error))
    return model


# ------------------------------------------------------------------------------ pure helpers


def test_stop_matcher_holds_back_a_partial_stop_and_cuts_at_a_full_one() -> None:
    matcher = _StopMatcher(["END", "<x>"])
    assert matcher.feed("hello E") == ("hello ", False)
    assert matcher.feed("N") == ("", False)
    assert matcher.feed("D and more") == ("", True)
    assert matcher.matched == "END"


def test_stop_matcher_releases_text_that_stops_being_a_match() -> None:
    matcher = _StopMatcher(["END"])
    assert matcher.feed("EN") == ("", False)
    assert matcher.feed("X") == ("ENX", False)
    assert matcher.flush("") == ""
    assert _StopMatcher([]).feed("END") == ("END", False)


def test_stop_matcher_picks_the_earliest_stop() -> None:
    matcher = _StopMatcher(["b", "a"])
    assert matcher.feed("xxab") == ("xx", True)
    assert matcher.matched == "a"


# ------------------------------------------------------------------------------- real model


@pytest.mark.model
def test_metadata_gives_template_and_special_tokens(small_model: LocalModel) -> None:
    assert small_model.chat_template_text is not None
    assert "<|im_start|>" in small_model.chat_template_text
    assert small_model.eos_token == "<|im_end|>"
    assert (
        small_model.tokenize("<|im_start|>")[0]
        == small_model._llama.tokenize(b"<|im_start|>", add_bos=False, special=True)[0]
    )
    assert len(small_model.tokenize("<|im_start|>")) == 1


@pytest.mark.model
def test_max_tokens_ends_with_length(small_model: LocalModel) -> None:
    generation = small_model.generation(PROMPT, SamplingSettings(max_tokens=5))
    pieces = list(generation)
    assert generation.finish_reason == "length"
    assert generation.completion_tokens == 5
    assert len(pieces) == 5
    assert "".join(p.text for p in pieces) == generation.text


@pytest.mark.model
def test_greedy_is_deterministic_and_seeded_sampling_repeats(small_model: LocalModel) -> None:
    def run(settings: SamplingSettings) -> str:
        generation = small_model.generation(PROMPT, settings)
        list(generation)
        return generation.text

    assert run(SamplingSettings(max_tokens=12)) == run(SamplingSettings(max_tokens=12))
    seeded = SamplingSettings(temperature=1.0, seed=1234, max_tokens=12)
    assert run(seeded) == run(seeded)


@pytest.mark.model
def test_multibyte_characters_split_over_tokens_arrive_whole(small_model: LocalModel) -> None:
    target = "café 🌊 日本語 naïve"
    grammar = GrammarConstraint(gbnf=f"root ::= {json.dumps(target, ensure_ascii=False)}")
    generation = small_model.generation(PROMPT, SamplingSettings(max_tokens=40), grammar)
    pieces = [piece.text for piece in generation]
    assert generation.text == target
    assert "".join(pieces) == target
    assert not any("\ufffd" in piece for piece in pieces)
    assert generation.completion_tokens > len(target.split())  # some character did span tokens
    assert generation.finish_reason == "stop"


@pytest.mark.model
def test_stop_strings_cut_the_text(small_model: LocalModel) -> None:
    grammar = GrammarConstraint(gbnf='root ::= "red, green STOP blue"')
    generation = small_model.generation(PROMPT, SamplingSettings(max_tokens=20, stop=("STOP",)), grammar)
    assert "".join(piece.text for piece in generation) == "red, green "
    assert generation.finish_reason == "stop"
    assert generation.stop_matched == "STOP"


@pytest.mark.model
def test_a_follow_up_prompt_evaluates_only_its_new_tokens(small_model: LocalModel) -> None:
    first = small_model.generation(PROMPT + "x", SamplingSettings(max_tokens=1))  # a different prefix first
    list(first)
    first = small_model.generation(PROMPT, SamplingSettings(max_tokens=8))
    list(first)
    follow_up = PROMPT + first.text + "<|im_end|>\n<|im_start|>user\nAnd three more?<|im_end|>\n"
    before = small_model.counters.prompt_tokens_evaluated
    second = small_model.generation(follow_up, SamplingSettings(max_tokens=1))
    list(second)
    prompt_tokens = small_model.tokenize(PROMPT)
    assert second.reused_tokens >= len(prompt_tokens)
    assert second.evaluated_tokens == second.prompt_tokens - second.reused_tokens
    assert second.evaluated_tokens < second.prompt_tokens - len(prompt_tokens) + 8
    assert small_model.counters.prompt_tokens_evaluated - before == second.evaluated_tokens
    # the very same prompt again: everything but the last token comes from the cache
    again = small_model.generation(follow_up, SamplingSettings(max_tokens=1))
    list(again)
    assert again.evaluated_tokens == 1
    assert again.reused_tokens == again.prompt_tokens - 1


@pytest.mark.model
def test_cancellation_stops_within_a_token(small_model: LocalModel) -> None:
    generation = small_model.generation(PROMPT, SamplingSettings(max_tokens=50))
    seen = 0
    for _ in generation:
        seen += 1
        if seen == 3:
            generation.cancel.set()
    assert seen == 3
    assert generation.completion_tokens == 3
    assert generation.finish_reason == "cancelled"


@pytest.mark.model
def test_a_prompt_longer_than_the_context_is_an_invalid_request(small_model: LocalModel) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        small_model.generation("word " * 3000)
    assert caught.value.param == "messages"
    assert "context" in caught.value.message


@pytest.mark.model
def test_a_call_grammar_makes_even_the_tiny_model_schema_valid(small_model: LocalModel) -> None:
    tool = ToolSpec(
        name="convert_currency",
        parameters={
            "type": "object",
            "properties": {
                "from_currency": {"type": "string", "maxLength": 3},
                "to_currency": {"type": "string", "maxLength": 3},
                "amount": {"type": "number"},
            },
            "required": ["from_currency", "to_currency", "amount"],
        },
    )
    layout = CallLayout(prefix="<tool_call>\n", suffix="\n</tool_call>", separator="\n")
    grammar = call_grammar([tool], layout, parallel=False, opener="layout")
    generation = small_model.generation(PROMPT, SamplingSettings(max_tokens=300), grammar)
    list(generation)
    assert generation.finish_reason == "stop"
    assert generation.text.startswith("<tool_call>\n") and generation.text.endswith("\n</tool_call>")
    call = json.loads(generation.text.removeprefix("<tool_call>\n").removesuffix("\n</tool_call>"))
    assert call["name"] == "convert_currency"
    jsonschema.validate(call["arguments"], tool.parameters)


@pytest.mark.model
def test_a_broken_grammar_is_reported_not_crashed(small_model: LocalModel) -> None:
    generation = small_model.generation(PROMPT, grammar=GrammarConstraint(gbnf='root ::= "a'))
    with pytest.raises(InvalidRequestError, match="grammar"):
        list(generation)


@pytest.mark.model
def test_banned_tokens_are_never_sampled(small_model: LocalModel) -> None:
    free = small_model.generation(PROMPT, SamplingSettings(max_tokens=6))
    list(free)
    first_token = small_model.tokenize(free.text)[0]
    banned = small_model.generation(PROMPT, SamplingSettings(max_tokens=6, banned_tokens=(first_token,)))
    tokens = [piece.token for piece in banned]
    assert first_token not in tokens


# ------------------------------------------------------------------------- prefix snapshots


def _system(topic: str) -> str:
    facts = " ".join(f"Rule {n}: answer questions about {topic} briefly and politely." for n in range(14))
    return f"<|im_start|>system\n{facts}<|im_end|>\n"


def _ask(system: str, question: str) -> str:
    return f"{system}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def _run(model: LocalModel, prompt: str):
    generation = model.generation(prompt, SamplingSettings(max_tokens=8))
    list(generation)
    return generation


@pytest.fixture
def fresh_small_model():
    from fncall.engine.models import resolve

    def load(prefix_cache_bytes: int) -> LocalModel:
        try:
            return LocalModel(resolve("smollm2-135m"), n_ctx=2048, prefix_cache_bytes=prefix_cache_bytes)
        except ConfigError as error:
            pytest.skip(str(error))

    loaded: list[LocalModel] = []
    yield lambda size: loaded.append(load(size)) or loaded[-1]
    for model in loaded:
        model.close()


@pytest.mark.model
def test_a_prompt_sharing_an_earlier_prefix_restores_its_snapshot(fresh_small_model) -> None:
    cached, plain = fresh_small_model(64 << 20), fresh_small_model(0)
    system = _system("currencies")
    prefix = len(cached.tokenize(system))
    assert prefix >= 128  # long enough to be kept
    _run(cached, _ask(system, "How much is 42 USD in CAD?"))
    _run(cached, _ask("<|im_start|>system\nBe brief.<|im_end|>\n", "The tool said 131.95. Answer."))
    follow = _run(cached, _ask(system, "And 10 EUR in JPY?"))
    assert follow.restored_tokens == follow.reused_tokens >= prefix
    assert follow.evaluated_tokens == follow.prompt_tokens - follow.reused_tokens
    assert cached.counters.prefix_restores == 1
    assert follow.text == _run(plain, _ask(system, "And 10 EUR in JPY?")).text  # same output as from scratch
    assert plain.counters.prefix_restores == 0


@pytest.mark.model
def test_prefix_snapshots_stay_within_their_memory_and_skip_short_prompts(fresh_small_model) -> None:
    probe = fresh_small_model(64 << 20)
    _run(probe, _ask(_system("weather"), "Rain in Oslo?"))
    _run(probe, "<|im_start|>user\nHi<|im_end|>\n")  # cuts the long sequence: it is kept...
    _run(probe, "<|im_start|>user\nHello<|im_end|>\n")  # ...but a short one is not worth keeping
    one_snapshot = probe._prefix_cache.bytes
    assert len(probe._prefix_cache) == 1 and one_snapshot > 0

    model = fresh_small_model(one_snapshot * 3 // 2)  # room for one such snapshot, not two
    for topic in ("weather", "stocks", "flights"):
        _run(model, _ask(_system(topic), "Anything new?"))
    assert len(model._prefix_cache) == 1 and model._prefix_cache.bytes <= one_snapshot * 3 // 2
    # the latest cut sequence is kept (and not evicted by keeping the current one), the oldest is gone
    assert _run(model, _ask(_system("stocks"), "NVDA?")).restored_tokens >= 128
    assert _run(model, _ask(_system("weather"), "Rain in Oslo?")).restored_tokens == 0
