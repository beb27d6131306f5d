"""A backend for Triton Inference Server's generate endpoints (KServe v2 generate extension), as served by the
TensorRT-LLM `ensemble` of the Triton tutorial.

Triton serves raw text: it takes a prompt and returns the model's continuation. So the conversation and its
tools are rendered here with the model family's chat format (Hermes-2-Pro for the tutorial's model), and the
text that comes back is read by fncall's own incremental tool-call parser. Requests go over httpx to
`POST /v2/models/{model}/generate` (one JSON answer) or `generate_stream` (Server-Sent Events).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

import httpx

from fncall.errors import ConfigError, InvalidRequestError, LLMError, LLMUnavailableError, OverloadedError
from fncall.formats.chat import ChatFormat, ChatTemplate, get_format
from fncall.formats.chat.prompt import builtin_template, result_text
from fncall.formats.chat.template import template_message
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
    forced_tool_name,
)

StreamMode = Literal["delta", "accumulated"]

DEFAULT_MODEL = "ensemble"
_RETRYABLE_STATUSES = frozenset({429, 503})
_MAX_BACKOFF_S = 8.0
_MAX_RETRY_AFTER_S = 30.0

# Where each family's assistant turn ends. The server normally stops there (end_id), but a deployment that
# does not know the end token keeps going, so generated text is also cut at these markers here.
_END_MARKERS: dict[str, tuple[str, ...]] = {
    "hermes": ("<|im_end|>",),
    "generic": ("<|im_end|>",),
    "llama3": ("<|eot_id|>", "<|eom_id|>"),
    "mistral": ("</s>",),
}

_TOOLS_PREAMBLE = (
    "You are a function-calling AI model. The functions you may call are described by their signatures "
    "inside <tools></tools> XML tags. Call one or more of them when they help with the request of the user, "
    "and do not guess values for their arguments.\\n<tools>"
)
_CALL_INSTRUCTIONS = (
    "To call a function, write a JSON object with its arguments and name inside <tool_call></tool_call> "
    "XML tags, like this:\\n<tool_call>\\n"
    '{\\"arguments\\": <arguments as a JSON object>, \\"name\\": <function name>}\\n</tool_call>\\n'
    "Each result comes back to you inside <tool_response></tool_response> XML tags."
)

HERMES_PRO_TEMPLATE = (
    "{%- set system_text = messages[0]['content'] if messages and messages[0]['role'] == 'system' else '' -%}"
    "{%- if tools -%}"
    "{{ '<|im_start|>system\\n' }}"
    "{%- if system_text %}{{ system_text + '\\n\\n' }}{% endif -%}"
    "{{ '" + _TOOLS_PREAMBLE + "' }}"
    "{%- for tool in tools %}{{ '\\n' + (tool | tojson) }}{% endfor -%}"
    "{{ '\\n</tools>\\n" + _CALL_INSTRUCTIONS + "<|im_end|>\\n' }}"
    "{%- elif system_text -%}"
    "{{ '<|im_start|>system\\n' + system_text + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' and loop.first -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' + message['content'] }}"
    "{%- for call in message.get('tool_calls', []) -%}"
    "{%- set shown = {'arguments': call['function']['arguments'], 'name': call['function']['name']} -%}"
    "{{ ('\\n' if message['content'] or not loop.first else '') }}"
    "{{ '<tool_call>\\n' + (shown | tojson) + '\\n</tool_call>' }}"
    "{%- endfor -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'tool' -%}"
    "{%- if loop.first or loop.previtem['role'] != 'tool' %}{{ '<|im_start|>tool\\n' }}{% endif -%}"
    "{{ '<tool_response>\\n{\"name\": ' + (message.get('name', '') | tojson) }}"
    "{{ ', \"content\": ' + message['content'] + '}\\n</tool_response>' }}"
    "{%- if loop.last or loop.nextitem['role'] != 'tool' %}{{ '<|im_end|>\\n' }}"
    "{%- else %}{{ '\\n' }}{% endif -%}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif -%}"
)
"""fncall's own Hermes-2-Pro style template: ChatML turns, the tools in the system turn, calls in
`<tool_call>` tags (arguments first, as Hermes-2-Pro writes them) and results in a `tool` turn of
`<tool_response>` blocks. Used for the hermes format when no template is given."""


@dataclass
class _GenerationInfo:
    """What a Triton answer says about the generation besides its text (only some backends report it)."""

    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def update(self, answer: Mapping[str, Any]) -> None:
        reason = answer.get("finish_reason")
        if isinstance(reason, list) and reason:
            reason = reason[0]
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
        self.prompt_tokens = _int_field(answer, "num_input_tokens", self.prompt_tokens)
        self.completion_tokens = _int_field(answer, "num_output_tokens", self.completion_tokens)


class TritonLLM(BaseLLM):
    """An LLM served by Triton's generate endpoints (the TensorRT-LLM `ensemble` or `tensorrt_llm_bls`).

    `chat_format` names the model family's format (tool-call syntax and prompt); `chat_template` is the
    model's own Jinja chat template (its tokenizer_config.json's), and without one the hermes format uses
    fncall's Hermes-2-Pro style template. `stream_mode` says how `generate_stream` sends text: `delta` (each
    event holds new text, the ensemble's streaming) or `accumulated` (each event holds all text so far, the
    BLS with `accumulate_tokens`). `end_id`/`pad_id` and `extra_inputs` are passed in every request body.

    Connection failures, 429 and 503 are retried `max_retries` times, `retry_backoff_s` doubling up to 8 s
    (Retry-After is honoured). `on_prompt` and `on_output` receive each rendered prompt and each raw model
    output, for verbose clients.
    """

    def __init__(
        self,
        base_url: str,
        model: str = DEFAULT_MODEL,
        *,
        chat_format: str = "hermes",
        chat_template: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        retry_backoff_s: float = 0.5,
        stream_mode: StreamMode = "delta",
        default_max_tokens: int = 1024,
        end_id: int | None = None,
        pad_id: int | None = None,
        extra_inputs: Mapping[str, Any] | None = None,
        on_prompt: Callable[[str], None] | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> None:
        if stream_mode not in ("delta", "accumulated"):
            raise ConfigError(f"stream_mode must be 'delta' or 'accumulated', not {stream_mode!r}.")
        self.base_url = _normalise_url(base_url)
        self.model = model
        try:
            self.chat_format: ChatFormat = get_format(chat_format)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        self.chat_template = ChatTemplate(chat_template) if chat_template is not None else None
        self._hermes_template = (
            builtin_template(HERMES_PRO_TEMPLATE)
            if chat_template is None and self.chat_format.name == "hermes"
            else None
        )
        self.end_markers = _END_MARKERS.get(self.chat_format.name, ())
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.stream_mode: StreamMode = stream_mode
        self.default_max_tokens = default_max_tokens
        self.end_id = end_id
        self.pad_id = pad_id
        self.extra_inputs = dict(extra_inputs or {})
        self.on_prompt = on_prompt
        self.on_output = on_output
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return (
            f"TritonLLM(base_url={self.base_url!r}, model={self.model!r}, format={self.chat_format.name!r})"
        )

    # -------------------------------------------------------------------------------- the protocol

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> Completion:
        async for event in self._events(messages, tools, tool_choice, params, streaming=False):
            if isinstance(event, FinishEvent):
                return event.completion
        raise LLMError(f"The Triton model {self.model!r} at {self.base_url} returned no completion.")

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        async for event in self._events(messages, tools, tool_choice, params, streaming=True):
            yield event

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------------------------ prompts

    def render_prompt(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], tool_choice: ToolChoice = "auto"
    ) -> str:
        """The text Triton is sent for this conversation: the chat format's rendering, with the tools the
        tool choice offers (none for "none", only the named one for a named choice)."""
        offered = _offered_tools(tools, tool_choice)
        marked = [_with_error_marked(message) for message in messages]
        if self._hermes_template is not None:
            shaped = [_hermes_message(message) for message in marked]
            return self._hermes_template.render(shaped, offered, add_generation_prompt=True)
        return self.chat_format.render(marked, offered, template=self.chat_template)

    def request_body(self, prompt: str, params: GenerationParams, *, streaming: bool) -> dict[str, Any]:
        """The generate request: the tutorial's fields (`text_input`, `max_tokens`, `stop_words` ...) plus
        sampling settings under the TensorRT-LLM ensemble's input names."""
        body: dict[str, Any] = {
            "text_input": prompt,
            "max_tokens": params.max_tokens or self.default_max_tokens,
            "stream": streaming,
        }
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.seed is not None:
            body["random_seed"] = params.seed
        if params.stop:
            body["stop_words"] = list(params.stop)
        if self.end_id is not None:
            body["end_id"] = self.end_id
        if self.pad_id is not None:
            body["pad_id"] = self.pad_id
        body.update(self.extra_inputs)
        return body

    # ---------------------------------------------------------------------------------- internals

    async def _events(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        tool_choice: ToolChoice,
        params: GenerationParams | None,
        *,
        streaming: bool,
    ) -> AsyncIterator[StreamEvent]:
        """One generation: render, post, feed the text through the format's parser, end with the finish."""
        params = params or GenerationParams()
        offered = _offered_tools(tools, tool_choice)
        prompt = self.render_prompt(messages, tools, tool_choice)
        if self.on_prompt is not None:
            self.on_prompt(prompt)
        body = self.request_body(prompt, params, streaming=streaming)
        parser = self.chat_format.stream_parser(offered)
        cutter = _StopCutter((*params.stop, *self.end_markers))
        assembler = StreamAssembler()
        info = _GenerationInfo()
        raw: list[str] = []
        pieces = self._stream_text(body, info) if streaming else self._whole_text(body, prompt, info)
        async with contextlib.aclosing(pieces):  # a stop, or a consumer that quits, closes the response
            async for piece in pieces:
                kept = cutter.feed(piece)
                raw.append(kept)
                for event in _keep(parser.feed(kept), params, tool_choice):
                    assembler.add(event)
                    yield event
                if cutter.stopped:
                    break
        tail = cutter.finish()
        raw.append(tail)
        hit_length = info.finish_reason == "length" or (
            info.completion_tokens > 0 and info.completion_tokens >= body["max_tokens"] and not cutter.stopped
        )
        events = parser.feed(tail) + parser.finish(truncated=hit_length)
        for event in _keep(events, params, tool_choice):
            assembler.add(event)
            yield event
        if self.on_output is not None:
            self.on_output("".join(raw))
        message = assembler.message()
        finish: FinishReason = "stop"
        if message.tool_calls:
            finish = "tool_calls"
        elif hit_length or parser.truncated:
            finish = "length"
        usage = Usage(prompt_tokens=info.prompt_tokens, completion_tokens=info.completion_tokens)
        yield FinishEvent(
            completion=Completion(message=message, finish_reason=finish, usage=usage, model=self.model)
        )

    async def _whole_text(
        self, body: dict[str, Any], prompt: str, info: _GenerationInfo
    ) -> AsyncGenerator[str, None]:
        """`generate`: one answer. A deployment that echoes the prompt (exclude_input_in_output off) has the
        prompt removed from the front of its output."""
        response = await self._post("generate", body, streaming=False)
        answer = _json_object(response.text)
        if answer is None:
            raise LLMError(
                f"The Triton model {self.model!r} at {self.base_url} answered with something that is not a "
                f"JSON object: {response.text[:200]!r}"
            )
        self._raise_for_error_object(answer)
        info.update(answer)
        text = _text_output(answer)
        if prompt and text.startswith(prompt):
            text = text[len(prompt) :]
        yield text

    async def _stream_text(self, body: dict[str, Any], info: _GenerationInfo) -> AsyncGenerator[str, None]:
        """`generate_stream`: text pieces from the Server-Sent Events, as deltas whatever the stream mode."""
        response = await self._post("generate_stream", body, streaming=True)
        sent = ""  # accumulated mode: the text given out so far
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, event names
                payload = line[len("data:") :].strip()
                if not payload or payload == "[DONE]":
                    continue
                answer = _json_object(payload)
                if answer is None:
                    raise LLMError(
                        f"The Triton model {self.model!r} at {self.base_url} streamed an event that is not "
                        f"a JSON object: {payload[:200]!r}"
                    )
                self._raise_for_error_object(answer)
                info.update(answer)
                text = _text_output(answer)
                if self.stream_mode == "delta":
                    if text:
                        yield text
                    continue
                # An incomplete UTF-8 character ("\ufffd") is sent again once complete: hold it back. Text
                # already given out cannot be taken back, so a server that rewrites it is read from len(sent).
                settled = text.rstrip("\ufffd")
                delta = settled[len(sent) :]
                if delta:
                    sent = settled
                    yield delta
        except httpx.TransportError as error:
            raise self._unavailable(error) from error
        finally:
            await response.aclose()

    async def _post(self, endpoint: str, body: dict[str, Any], *, streaming: bool) -> httpx.Response:
        """POSTs to the model's endpoint, retrying connection failures, 429 and 503 with backoff."""
        url = f"{self.base_url}/v2/models/{self.model}/{endpoint}"
        client = self._http_client()
        attempt = 0
        while True:
            try:
                request = client.build_request("POST", url, json=body)
                response = await client.send(request, stream=streaming)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                if attempt < self.max_retries:
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise self._unavailable(error) from error
            except httpx.TransportError as error:
                raise self._unavailable(error) from error
            if response.status_code < 400:
                return response
            await response.aread()
            await response.aclose()
            if response.status_code in _RETRYABLE_STATUSES and attempt < self.max_retries:
                await asyncio.sleep(_retry_after(response) or self._backoff(attempt))
                attempt += 1
                continue
            raise self._status_error(response)

    def _http_client(self) -> httpx.AsyncClient:
        """One connection pool per event loop: a pool made under another loop cannot be used in this one."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s, connect=10.0))
            self._client_loop = loop
        return self._client

    def _backoff(self, attempt: int) -> float:
        return min(self.retry_backoff_s * 2**attempt, _MAX_BACKOFF_S)

    def _unavailable(self, error: Exception) -> LLMUnavailableError:
        detail = str(error) or type(error).__name__
        if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
            return LLMUnavailableError(
                f"The Triton server at {self.base_url} did not answer within {self.timeout_s:g} s "
                f"({detail}). Raise the timeout or ask for fewer tokens."
            )
        return LLMUnavailableError(
            f"Could not reach the Triton server at {self.base_url} after {self.max_retries} retries "
            f"({detail}). Check that it is running and that the URL (HTTP port, usually 8000) is right."
        )

    def _status_error(self, response: httpx.Response) -> LLMError:
        answer = _json_object(response.text) or {}
        reason = answer.get("error") if isinstance(answer.get("error"), str) else response.text[:300]
        message = (
            f"The Triton server at {self.base_url} answered {response.status_code} for model "
            f"{self.model!r}: {reason or response.reason_phrase}"
        )
        if response.status_code == 429:
            return OverloadedError(message, retry_after=_retry_after(response) or 1.0)
        if response.status_code == 503:
            return LLMUnavailableError(message)
        return LLMError(message)

    def _raise_for_error_object(self, answer: Mapping[str, Any]) -> None:
        """Triton reports errors that happen after the response started inside the body: `{"error": ...}`."""
        error = answer.get("error")
        if error:
            raise LLMError(f"The Triton model {self.model!r} at {self.base_url} failed: {error}")


class _StopCutter:
    """Cuts generated text at the first stop string, holding back a tail that might begin one, so a stop
    split across stream events is still found and never shown."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(dict.fromkeys(stop for stop in stops if stop))
        self._held = ""
        self.stopped = False

    def feed(self, chunk: str) -> str:
        """The part of `chunk` (with what was held back) that is certainly before any stop."""
        if self.stopped:
            return ""
        text = self._held + chunk
        found = [index for stop in self._stops if (index := text.find(stop)) >= 0]
        if found:
            self.stopped = True
            self._held = ""
            return text[: min(found)]
        keep = self._undecided_tail(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def finish(self) -> str:
        """What was held back: at the end of the text it cannot begin a stop any more."""
        held, self._held = self._held, ""
        return held

    def _undecided_tail(self, text: str) -> int:
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest


# ------------------------------------------------------------------------------------------ helpers


def _normalise_url(base_url: str) -> str:
    url = base_url.strip().rstrip("/")
    if not url:
        raise ConfigError("The Triton backend needs a server URL, e.g. http://127.0.0.1:8000.")
    if "://" not in url:
        url = f"http://{url}"
    return url


def _offered_tools(tools: Sequence[ToolSpec], tool_choice: ToolChoice) -> list[ToolSpec]:
    """The tools shown to the model: a raw-text model cannot be forced, so a named choice is honoured by
    offering only that tool, and "none" by offering none."""
    if tool_choice == "none":
        return []
    name = forced_tool_name(tool_choice)
    if name is None:
        return list(tools)
    chosen = [tool for tool in tools if tool.name == name]
    if not chosen:
        raise InvalidRequestError(f"tool_choice names {name!r}, which is not among the tools.", "tool_choice")
    return chosen


def _keep(
    events: Sequence[StreamEvent], params: GenerationParams, tool_choice: ToolChoice
) -> list[StreamEvent]:
    """Drops calls the request did not allow: all of them for "none", all but the first when parallel calls
    are off."""
    kept: list[StreamEvent] = []
    for event in events:
        if isinstance(event, ToolCallStartEvent | ToolCallDeltaEvent | ToolCallEndEvent) and (
            tool_choice == "none" or (not params.parallel_tool_calls and event.index > 0)
        ):
            continue
        kept.append(event)
    return kept


def _with_error_marked(message: Message) -> Message:
    """A failed tool result says so in its text, whatever template renders it."""
    if message.role == "tool" and message.is_error:
        return message.model_copy(update={"content": result_text(message)})
    return message


def _hermes_message(message: Message) -> dict[str, Any]:
    """A message for fncall's Hermes template: tool results are put in as JSON, so plain text is quoted."""
    entry = template_message(message)
    if message.role == "tool" and not isinstance(_json_value(message.text), dict | list):
        entry["content"] = json.dumps(message.text, ensure_ascii=False)
    return entry


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _json_object(text: str) -> dict[str, Any] | None:
    value = _json_value(text) if text else None
    return value if isinstance(value, dict) else None


def _text_output(answer: Mapping[str, Any]) -> str:
    """`text_output` as a string: Triton sends a one-element list for a batched output tensor."""
    text = answer.get("text_output", "")
    if isinstance(text, list):
        text = "".join(str(item) for item in text)
    return text if isinstance(text, str) else str(text)


def _int_field(answer: Mapping[str, Any], key: str, default: int) -> int:
    value = answer.get(key)
    if isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _retry_after(response: httpx.Response) -> float | None:
    try:
        value = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return min(max(value, 0.0), _MAX_RETRY_AFTER_S)


# --------------------------------------------------------------------------------------------- spec

_SPEC_OPTIONS = ("format", "stream_mode", "timeout", "retries", "end_id", "pad_id", "template")


def from_spec(rest: str) -> TritonLLM:
    """`triton:http://HOST:8000#MODEL`, with options after `?` (before or after the `#model`):
    `format` (hermes), `stream_mode` (delta|accumulated), `timeout`, `retries`, `end_id`, `pad_id` and
    `template` (a file holding the model's Jinja chat template)."""
    text = rest.strip()
    target, _, fragment = text.partition("#")
    target, _, target_query = target.partition("?")
    model, _, model_query = fragment.partition("?")
    query = "&".join(part for part in (target_query, model_query) if part)
    options = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - set(_SPEC_OPTIONS))
    if unknown:
        raise ConfigError(
            f"Unknown option(s) {', '.join(unknown)} in 'triton:{rest}'; known: {', '.join(_SPEC_OPTIONS)}."
        )
    if not target:
        raise ConfigError(
            f"Cannot read the LLM spec 'triton:{rest}': write 'triton:http://HOST:8000#model' "
            "(the model defaults to 'ensemble')."
        )
    template = None
    if options.get("template"):
        path = Path(options["template"]).expanduser()
        try:
            template = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"Cannot read the chat template file {str(path)!r}: {error}.") from None
    stream_mode: Any = options.get("stream_mode") or "delta"  # checked by TritonLLM
    return TritonLLM(
        target,
        model.strip() or DEFAULT_MODEL,
        chat_format=options.get("format") or "hermes",
        chat_template=template,
        timeout_s=_number_option(options, "timeout", 120.0, float),
        max_retries=_number_option(options, "retries", 3, int),
        stream_mode=stream_mode,
        end_id=_number_option(options, "end_id", None, int),
        pad_id=_number_option(options, "pad_id", None, int),
    )


def _number_option(options: dict[str, str], key: str, default: Any, kind: type) -> Any:
    if key not in options:
        return default
    try:
        return kind(options[key])
    except ValueError:
        raise ConfigError(f"The triton: option {key} must be a number, not {options[key]!r}.") from None
