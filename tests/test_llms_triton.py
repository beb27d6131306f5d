"""The Triton backend against a fake Triton server on 127.0.0.1 that speaks the generate extension."""

from __future__ import annotations

import itertools
import json
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_triton import FakeTriton
from fncall.errors import ConfigError, InvalidRequestError, LLMError, LLMUnavailableError, OverloadedError
from fncall.llms import from_spec
from fncall.llms.base import collect_stream
from fncall.llms.triton import TritonLLM, _StopCutter
from fncall.tools.builtin import builtin_registry
from fncall.types import (
    FinishEvent,
    GenerationParams,
    Message,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolResult,
)

NEWS_CALL = '<tool_call>\n{"arguments": {"symbol": "RIVN"}, "name": "get_company_news"}\n</tool_call>'
PRICE_CALL = '<tool_call>\n{"arguments": {"symbol": "RIVN"}, "name": "get_current_stock_price"}\n</tool_call>'
ANSWER = "Rivian (RIVN) trades at 13.42 USD; it beat delivery estimates for the fourth quarter."
QUESTION = "Give me Rivian (RIVN) news and stock price"
TOOLS = builtin_registry(["get_current_stock_price", "get_company_news"]).specs()


def _llm(url: str, **settings) -> TritonLLM:
    return TritonLLM(url, retry_backoff_s=0.0, **settings)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_complete_parses_a_hermes_call_from_generate(serve_app) -> None:
    fake = FakeTriton([NEWS_CALL + "<|im_end|>"])
    params = GenerationParams(max_tokens=200, temperature=0.2, top_p=0.9, seed=7, stop=["Observation:"])
    with serve_app(fake.app()) as url:
        completion = await _llm(url).complete([Message.user(QUESTION)], TOOLS, params=params)

    [call] = completion.message.tool_calls
    assert (call.name, call.arguments) == ("get_company_news", {"symbol": "RIVN"})
    assert completion.finish_reason == "tool_calls"
    assert completion.message.content is None
    assert fake.paths == ["/v2/models/ensemble/generate"]
    body = fake.requests[0]
    assert {
        key: body[key] for key in ("max_tokens", "temperature", "top_p", "random_seed", "stop_words")
    } == {
        "max_tokens": 200,
        "temperature": 0.2,
        "top_p": 0.9,
        "random_seed": 7,
        "stop_words": ["Observation:"],
    }
    assert body["stream"] is False


async def test_the_prompt_holds_the_tools_and_the_chatml_turns(serve_app) -> None:
    fake = FakeTriton([ANSWER])
    with serve_app(fake.app()) as url:
        await _llm(url).complete([Message.system("Be brief."), Message.user(QUESTION)], TOOLS)

    prompt = fake.prompts[0]
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\nYou are a function-calling AI model.")
    assert "<tools>\n" in prompt and "\n</tools>" in prompt
    tool_lines = [json.loads(line) for line in prompt.splitlines() if line.startswith('{"type": "function"')]
    assert [line["function"]["name"] for line in tool_lines] == [
        "get_current_stock_price",
        "get_company_news",
    ]
    assert f"<|im_start|>user\n{QUESTION}<|im_end|>\n" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


async def test_calls_and_results_are_written_back_in_hermes_syntax(serve_app) -> None:
    call = ToolCall(name="get_company_news", arguments={"symbol": "RIVN"})
    failed = ToolCall(name="get_current_stock_price", arguments={"symbol": "RIVN"})
    history = [
        Message.user(QUESTION),
        Message.assistant(tool_calls=[call, failed]),
        Message.tool(ToolResult(call_id=call.id, name=call.name, content='{"headlines": ["up"]}')),
        Message.tool(ToolResult(call_id=failed.id, name=failed.name, content="timed out", is_error=True)),
    ]
    fake = FakeTriton([ANSWER])
    with serve_app(fake.app()) as url:
        await _llm(url).complete(history, TOOLS)

    prompt = fake.prompts[0]
    assert (
        "<|im_start|>assistant\n<tool_call>\n"
        '{"arguments": {"symbol": "RIVN"}, "name": "get_company_news"}\n</tool_call>\n<tool_call>\n'
        '{"arguments": {"symbol": "RIVN"}, "name": "get_current_stock_price"}\n</tool_call><|im_end|>\n'
    ) in prompt
    assert (
        "<|im_start|>tool\n<tool_response>\n"
        '{"name": "get_company_news", "content": {"headlines": ["up"]}}\n</tool_response>\n'
        "<tool_response>\n"
        '{"name": "get_current_stock_price", "content": "Error: timed out"}\n</tool_response><|im_end|>\n'
    ) in prompt


async def test_stream_sends_argument_fragments_then_the_whole_call(serve_app) -> None:
    # Name first (as Qwen writes it): the call can start before its arguments are complete.
    call_text = (
        '<tool_call>\n{"name": "get_current_stock_price", "arguments": {"symbol": "RIVN"}}\n</tool_call>'
    )
    fake = FakeTriton([f"Let me check.\n{call_text}<|im_end|>"], chunk_chars=3)
    with serve_app(fake.app()) as url:
        events = [event async for event in _llm(url).stream([Message.user(QUESTION)], TOOLS)]

    assert fake.paths == ["/v2/models/ensemble/generate_stream"]
    assert fake.requests[0]["stream"] is True
    text = "".join(event.text for event in events if isinstance(event, TextDeltaEvent))
    assert text.strip() == "Let me check."
    [start] = [event for event in events if isinstance(event, ToolCallStartEvent)]
    assert start.name == "get_current_stock_price"
    fragments = [event.arguments_delta for event in events if isinstance(event, ToolCallDeltaEvent)]
    assert len(fragments) > 1  # the arguments arrived over several events
    assert json.loads("".join(fragments)) == {"symbol": "RIVN"}
    [end] = [event for event in events if isinstance(event, ToolCallEndEvent)]
    assert (end.call.name, end.call.arguments, end.call.id) == (
        "get_current_stock_price",
        {"symbol": "RIVN"},
        start.id,
    )
    assert isinstance(events[-1], FinishEvent)
    assert events[-1].completion.finish_reason == "tool_calls"
    assert events[-1].completion.message.tool_calls == [end.call]


@pytest.mark.parametrize("mode", ["delta", "accumulated"])
async def test_stream_text_in_both_stream_modes_stops_at_the_end_marker(serve_app, mode) -> None:
    fake = FakeTriton([ANSWER + "<|im_end|>\n<|im_start|>user\nmore"], chunk_chars=4, stream_mode=mode)
    with serve_app(fake.app()) as url:
        events = [
            event async for event in _llm(url, stream_mode=mode).stream([Message.user(QUESTION)], TOOLS)
        ]

    deltas = [event.text for event in events if isinstance(event, TextDeltaEvent)]
    assert len(deltas) > 1
    assert "".join(deltas) == ANSWER
    completion = events[-1].completion
    assert (completion.message.content, completion.finish_reason) == (ANSWER, "stop")


async def test_stop_strings_split_across_events_are_cut(serve_app) -> None:
    fake = FakeTriton(["The price is 13.42 USD.\nObservation: extra text"], chunk_chars=2)
    with serve_app(fake.app()) as url:
        completion = await collect_stream(
            _llm(url).stream([Message.user(QUESTION)], params=GenerationParams(stop=["Observation:"]))
        )
    assert completion.message.content == "The price is 13.42 USD."


@given(
    text=st.text(alphabet="ab<|>e", max_size=40),
    stops=st.lists(st.text(alphabet="ab<|>e", min_size=1, max_size=4), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=6),
)
def test_the_stop_cutter_gives_the_text_before_the_first_stop_in_any_chunking(text, stops, cuts) -> None:
    positions = [0, *sorted({cut for cut in cuts if cut <= len(text)}), len(text)]
    chunks = [text[start:end] for start, end in itertools.pairwise(positions)]
    cutter = _StopCutter(stops)
    kept = "".join(cutter.feed(chunk) for chunk in chunks) + cutter.finish()
    found = [index for stop in stops if (index := text.find(stop)) >= 0]
    assert kept == (text[: min(found)] if found else text)
    assert cutter.stopped == bool(found)


async def test_an_echoed_prompt_is_removed_from_the_output(serve_app) -> None:
    fake = FakeTriton([ANSWER], echo_prompt=True)
    with serve_app(fake.app()) as url:
        completion = await _llm(url).complete([Message.user(QUESTION)], TOOLS)
    assert completion.message.content == ANSWER


async def test_reported_counts_give_usage_and_the_length_finish(serve_app) -> None:
    fake = FakeTriton(["one two three four five six"], report_counts=True)
    with serve_app(fake.app()) as url:
        completion = await _llm(url).complete([Message.user("count")], params=GenerationParams(max_tokens=3))
    assert completion.message.content == "one two three"
    assert completion.finish_reason == "length"
    assert completion.usage.completion_tokens == 3
    assert completion.usage.prompt_tokens > 0


async def test_tool_choice_none_offers_no_tools_and_drops_calls(serve_app) -> None:
    fake = FakeTriton([f"Sure. {NEWS_CALL}"])
    with serve_app(fake.app()) as url:
        completion = await _llm(url).complete([Message.user(QUESTION)], TOOLS, tool_choice="none")
    assert "<tools>" not in fake.prompts[0]
    assert completion.message.tool_calls == []
    assert completion.finish_reason == "stop"


async def test_a_named_tool_choice_offers_only_that_tool(serve_app) -> None:
    fake = FakeTriton([NEWS_CALL])
    with serve_app(fake.app()) as url:
        llm = _llm(url)
        await llm.complete([Message.user(QUESTION)], TOOLS, tool_choice={"name": "get_company_news"})
        with pytest.raises(InvalidRequestError, match="'nope'"):
            await llm.complete([Message.user(QUESTION)], TOOLS, tool_choice={"name": "nope"})
    assert '"name": "get_company_news"' in fake.prompts[0]
    assert "get_current_stock_price" not in fake.prompts[0]


async def test_parallel_calls_off_keeps_the_first_call(serve_app) -> None:
    fake = FakeTriton([f"{NEWS_CALL}\n{PRICE_CALL}"] * 2)
    with serve_app(fake.app()) as url:
        llm = _llm(url)
        both = await llm.complete([Message.user(QUESTION)], TOOLS)
        one = await llm.complete(
            [Message.user(QUESTION)], TOOLS, params=GenerationParams(parallel_tool_calls=False)
        )
    assert [call.name for call in both.message.tool_calls] == ["get_company_news", "get_current_stock_price"]
    assert [call.name for call in one.message.tool_calls] == ["get_company_news"]


async def test_an_unknown_model_raises_tritons_message(serve_app) -> None:
    with serve_app(FakeTriton([ANSWER]).app()) as url:
        with pytest.raises(
            LLMError, match="answered 400 for model 'nope': Request for unknown model: 'nope'"
        ):
            await TritonLLM(url, "nope").complete([Message.user(QUESTION)])
        with pytest.raises(LLMError, match="unknown model"):
            await collect_stream(TritonLLM(url, "nope").stream([Message.user(QUESTION)]))


async def test_an_error_event_in_the_middle_of_a_stream_raises(serve_app) -> None:
    fake = FakeTriton([ANSWER], fail_stream_after=2)
    with (
        serve_app(fake.app()) as url,
        pytest.raises(LLMError, match="fake failure in the middle of the stream"),
    ):
        await collect_stream(_llm(url).stream([Message.user(QUESTION)]))


async def test_503_and_429_are_retried(serve_app) -> None:
    fake = FakeTriton([ANSWER], failures=[503, 429])
    with serve_app(fake.app()) as url:
        completion = await _llm(url, max_retries=2).complete([Message.user(QUESTION)])
    assert completion.message.content == ANSWER
    assert len(fake.paths) == 3


async def test_retries_that_run_out_raise_the_matching_error(serve_app) -> None:
    with (
        serve_app(FakeTriton([ANSWER], failures=[429, 429]).app()) as url,
        pytest.raises(OverloadedError, match="answered 429"),
    ):
        await _llm(url, max_retries=1).complete([Message.user(QUESTION)])
    with (
        serve_app(FakeTriton([ANSWER], failures=[503, 503]).app()) as url,
        pytest.raises(LLMUnavailableError, match="answered 503"),
    ):
        await collect_stream(_llm(url, max_retries=1).stream([Message.user(QUESTION)]))


async def test_a_server_that_is_not_running_raises_unavailable_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(
        LLMUnavailableError, match=f"Could not reach the Triton server at {url} after 1 retries"
    ):
        await _llm(url, max_retries=1).complete([Message.user(QUESTION)])


async def test_verbose_hooks_see_the_prompt_and_the_raw_output(serve_app) -> None:
    seen: list[tuple[str, str]] = []
    fake = FakeTriton([NEWS_CALL + "<|im_end|>"])
    with serve_app(fake.app()) as url:
        llm = _llm(url, on_prompt=lambda text: seen.append(("prompt", text)))
        llm.on_output = lambda text: seen.append(("output", text))
        await llm.complete([Message.user(QUESTION)], TOOLS)
    assert seen == [("prompt", fake.prompts[0]), ("output", NEWS_CALL)]


async def test_other_formats_and_own_templates_render_the_prompt(serve_app) -> None:
    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant] "
    fake = FakeTriton([ANSWER, ANSWER])
    with serve_app(fake.app()) as url:
        await _llm(url, chat_format="llama3").complete([Message.user(QUESTION)], TOOLS)
        await _llm(url, chat_template=template).complete([Message.user(QUESTION)])
    assert "<|start_header_id|>user<|end_header_id|>" in fake.prompts[0]
    assert fake.prompts[1] == f"[user] {QUESTION}\n[assistant] "


def test_specs_name_the_server_the_model_and_options(tmp_path) -> None:
    llm = from_spec("triton:http://127.0.0.1:8000#ensemble")
    assert isinstance(llm, TritonLLM)
    assert (llm.base_url, llm.model, llm.chat_format.name) == ("http://127.0.0.1:8000", "ensemble", "hermes")

    template = tmp_path / "template.jinja"
    template.write_text("{{ messages[0]['content'] }}", encoding="utf-8")
    llm = from_spec(f"triton:localhost:8000/?format=qwen&stream_mode=accumulated&template={template}#bls")
    assert (llm.base_url, llm.model, llm.stream_mode) == ("http://localhost:8000", "bls", "accumulated")
    assert llm.chat_template is not None and llm.chat_template.source == "{{ messages[0]['content'] }}"

    llm = from_spec("triton:http://h:8000#tensorrt_llm_bls?retries=0&end_id=128003&timeout=5")
    assert (llm.model, llm.max_retries, llm.end_id, llm.timeout_s) == ("tensorrt_llm_bls", 0, 128003, 5.0)
    assert from_spec("triton:http://h:8000").model == "ensemble"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("triton:http://h:8000?colour=red", "Unknown option"),
        ("triton:http://h:8000?stream_mode=lines", "stream_mode"),
        ("triton:http://h:8000?retries=many", "retries must be a number"),
        ("triton:http://h:8000?format=nope", "Unknown chat format"),
        ("triton:", "write 'triton:http://HOST:8000#model'"),
    ],
)
def test_bad_specs_say_what_to_fix(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_spec(spec)
