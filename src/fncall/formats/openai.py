"""The OpenAI chat-completions wire format, both directions.

A server parses requests (`ChatCompletionRequest`, `to_canonical`) and renders responses
(`completion_to_response`, `ChunkEncoder`); a client renders requests (`from_canonical`) and parses responses
(`response_to_completion`, `ChunkDecoder`). Pure functions and small state machines: no I/O here.

Parsing is lenient where real clients and servers differ from the reference API (LangChain's `content: null`,
legacy `functions`, Ollama's whole-arguments deltas) and strict, with the offending parameter named, where a
request cannot be served as given.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

from fncall.errors import InvalidRequestError, LLMError
from fncall.types import (
    Completion,
    FinishEvent,
    FinishReason,
    GenerationParams,
    Message,
    ReasoningDeltaEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolChoice,
    ToolSpec,
    Usage,
    new_call_id,
)

logger = logging.getLogger(__name__)

MaxTokensField = Literal["max_tokens", "max_completion_tokens"]


def new_request_id() -> str:
    """A fresh response id in OpenAI's `chatcmpl-...` shape."""
    return "chatcmpl-" + uuid.uuid4().hex


# ============================================================================================ request


class _WireModel(BaseModel):
    # Unknown fields are accepted and ignored, as OpenAI and vLLM do: clients send vendor extensions.
    model_config = ConfigDict(extra="ignore")


class ContentPart(_WireModel):
    type: str
    text: str | None = None
    refusal: str | None = None


class FunctionCallBody(_WireModel):
    name: str
    # Some clients send the arguments as an object instead of a JSON string; both are accepted.
    arguments: str | dict[str, Any] = ""


class WireToolCall(_WireModel):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCallBody


class WireMessage(_WireModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCallBody | None = None
    reasoning_content: str | None = None


class FunctionDefinition(_WireModel):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class WireTool(_WireModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class FunctionName(_WireModel):
    name: str


class NamedToolChoiceBody(_WireModel):
    type: Literal["function"] = "function"
    function: FunctionName


class StreamOptions(_WireModel):
    include_usage: bool = False


class ChatCompletionRequest(_WireModel):
    """The body of `POST /v1/chat/completions`, as clients send it."""

    model: str = "default"
    messages: list[WireMessage]
    tools: list[WireTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoiceBody | None = None
    parallel_tool_calls: bool | None = None
    functions: list[FunctionDefinition] | None = None
    function_call: Literal["auto", "none"] | FunctionName | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1)
    response_format: dict[str, Any] | None = None
    user: str | None = None
    # fncall extension: force constrained decoding of tool calls on or off (local engine only).
    constrained: bool | None = None
    # llama.cpp server's extension, read by fncall's local engine: a GBNF grammar for the whole reply.
    grammar: str | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def to_canonical(
    request: ChatCompletionRequest,
) -> tuple[list[Message], list[ToolSpec], ToolChoice, GenerationParams]:
    """The canonical conversation, tools, tool choice and generation settings a request asks for.

    Raises InvalidRequestError naming the parameter when the request cannot be served as given.
    """
    if not request.messages:
        raise InvalidRequestError("'messages' must contain at least one message.", param="messages")
    if request.n is not None and request.n > 1:
        raise InvalidRequestError("Only n=1 is supported: this server returns one choice.", param="n")
    tools = _tools_to_canonical(request)
    tool_choice = _tool_choice_to_canonical(request, tools)
    messages = _messages_to_canonical(request.messages)
    params = GenerationParams(
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_completion_tokens or request.max_tokens,
        stop=[request.stop] if isinstance(request.stop, str) else list(request.stop or []),
        seed=request.seed,
        parallel_tool_calls=True if request.parallel_tool_calls is None else request.parallel_tool_calls,
        response_format=request.response_format,
        constrained=request.constrained,
        grammar=request.grammar,
    )
    return messages, tools, tool_choice, params


def _tools_to_canonical(request: ChatCompletionRequest) -> list[ToolSpec]:
    definitions = [(f"tools[{i}].function", tool.function) for i, tool in enumerate(request.tools or [])]
    definitions += [(f"functions[{i}]", fn) for i, fn in enumerate(request.functions or [])]
    tools: list[ToolSpec] = []
    seen: set[str] = set()
    for param, definition in definitions:
        if definition.name in seen:
            raise InvalidRequestError(
                f"Two tools are named {definition.name!r}; tool names must be unique.", param=f"{param}.name"
            )
        seen.add(definition.name)
        parameters = definition.parameters or {"type": "object", "properties": {}}
        _check_json_schema(parameters, param=f"{param}.parameters", tool_name=definition.name)
        tools.append(
            ToolSpec(
                name=definition.name,
                description=definition.description or "",
                parameters=parameters,
                strict=bool(definition.strict),
            )
        )
    return tools


def _check_json_schema(schema: dict[str, Any], *, param: str, tool_name: str) -> None:
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise InvalidRequestError(
            f"The parameters of tool {tool_name!r} are not a valid JSON Schema: "
            f"{error.message} (at {where}).",
            param=param,
        ) from None


def _tool_choice_to_canonical(request: ChatCompletionRequest, tools: list[ToolSpec]) -> ToolChoice:
    param = "tool_choice"
    raw: Any = request.tool_choice
    if raw is None and request.function_call is not None:
        param, raw = "function_call", request.function_call
    if raw is None:
        return "auto"
    if isinstance(raw, NamedToolChoiceBody):
        raw = raw.function
    if isinstance(raw, FunctionName):
        offered = [tool.name for tool in tools]
        if not offered:
            raise InvalidRequestError(
                f"{param} names tool {raw.name!r} but no tools were given.", param=param
            )
        if raw.name not in offered:
            raise InvalidRequestError(
                f"{param} names tool {raw.name!r}, which is not among the tools offered: "
                f"{', '.join(offered)}.",
                param=param,
            )
        return {"name": raw.name}
    if raw == "required" and not tools:
        raise InvalidRequestError(f"{param} is 'required' but no tools were given.", param=param)
    return raw


def _messages_to_canonical(wire_messages: Sequence[WireMessage]) -> list[Message]:
    messages: list[Message] = []
    call_names: dict[str, str] = {}
    # Legacy `function_call` messages carry no id: remember the ids we gave them, by function name.
    legacy_call_ids: dict[str, list[str]] = {}
    for i, wire in enumerate(wire_messages):
        param = f"messages[{i}]"
        text = _content_text(wire.content, param=f"{param}.content")
        if wire.role in ("system", "developer"):
            messages.append(Message(role="system", content=text or ""))
        elif wire.role == "user":
            messages.append(Message(role="user", content=text or "", name=wire.name))
        elif wire.role == "assistant":
            calls = [_call_to_canonical(call) for call in wire.tool_calls or []]
            if wire.function_call is not None:
                legacy = _call_to_canonical(WireToolCall(function=wire.function_call))
                legacy_call_ids.setdefault(legacy.name, []).append(legacy.id)
                calls.append(legacy)
            call_names.update({call.id: call.name for call in calls})
            messages.append(
                Message(
                    role="assistant",
                    content=text or None,
                    tool_calls=calls,
                    name=wire.name,
                    reasoning=wire.reasoning_content or None,
                )
            )
        elif wire.role == "tool":
            if not wire.tool_call_id:
                raise InvalidRequestError(
                    "A tool message needs the tool_call_id of the call it answers.",
                    param=f"{param}.tool_call_id",
                )
            if wire.tool_call_id not in call_names:
                logger.debug("tool message %s answers no earlier tool call: %s", i, wire.tool_call_id)
            name = wire.name or call_names.get(wire.tool_call_id)
            messages.append(
                Message(role="tool", content=text or "", tool_call_id=wire.tool_call_id, name=name)
            )
        else:  # the legacy "function" role: a result for the latest call of that name
            if not wire.name:
                raise InvalidRequestError(
                    "A function message needs the function's name.", param=f"{param}.name"
                )
            pending = legacy_call_ids.get(wire.name)
            call_id = pending.pop(0) if pending else new_call_id()
            messages.append(Message(role="tool", content=text or "", tool_call_id=call_id, name=wire.name))
    return messages


def _content_text(content: str | list[ContentPart] | None, *, param: str) -> str | None:
    if content is None or isinstance(content, str):
        return content
    texts: list[str] = []
    for j, part in enumerate(content):
        if part.type in ("text", "input_text", "output_text") and part.text is not None:
            texts.append(part.text)
        elif part.type == "refusal" and part.refusal is not None:
            texts.append(part.refusal)
        else:
            raise InvalidRequestError(
                f"Content parts of type {part.type!r} are not supported: this server reads text only.",
                param=f"{param}[{j}].type",
            )
    return "".join(texts)


def _call_to_canonical(call: WireToolCall) -> ToolCall:
    call_id = call.id or new_call_id()
    arguments = call.function.arguments
    if isinstance(arguments, dict):
        return ToolCall(id=call_id, name=call.function.name, arguments=arguments)
    return _tool_call_from_text(call_id, call.function.name, arguments)


def _tool_call_from_text(call_id: str, name: str, raw_arguments: str) -> ToolCall:
    # Arguments that are not a JSON object are kept as text, so the model can be told what to fix.
    value = _json_or_none(raw_arguments.strip() or "{}")
    if isinstance(value, dict):
        return ToolCall(id=call_id, name=name, arguments=value)
    return ToolCall(id=call_id, name=name, unparsed_arguments=raw_arguments)


def from_canonical(
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    tool_choice: ToolChoice,
    params: GenerationParams | None,
    model: str,
    *,
    max_tokens_field: MaxTokensField = "max_tokens",
) -> dict[str, Any]:
    """The request body a client sends for this conversation (without `stream`).

    `max_tokens_field` picks the name of the token limit: local servers know `max_tokens`, OpenAI's newer
    models only `max_completion_tokens`.
    """
    params = params or GenerationParams()
    body: dict[str, Any] = {"model": model, "messages": [_message_to_wire(m) for m in messages]}
    if tools:
        body["tools"] = [_tool_to_wire(tool) for tool in tools]
        body["tool_choice"] = _tool_choice_to_wire(tool_choice)
        body["parallel_tool_calls"] = params.parallel_tool_calls
    if params.temperature is not None:
        body["temperature"] = params.temperature
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if params.max_tokens is not None:
        body[max_tokens_field] = params.max_tokens
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    if params.response_format is not None:
        body["response_format"] = params.response_format
    if params.constrained is not None:
        body["constrained"] = params.constrained
    if params.grammar is not None:
        body["grammar"] = params.grammar
    return body


def _message_to_wire(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content or ""}
    if message.role == "assistant":
        wire: dict[str, Any] = {"role": "assistant"}
        if message.tool_calls:
            wire["content"] = message.content or None
            wire["tool_calls"] = [call_to_wire(call) for call in message.tool_calls]
        else:
            wire["content"] = message.content or ""
        return wire
    wire = {"role": message.role, "content": message.content or ""}
    if message.name and message.role == "user":
        wire["name"] = message.name
    return wire


def call_to_wire(call: ToolCall) -> dict[str, Any]:
    """A tool call in OpenAI's shape: arguments as a JSON string."""
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json()},
    }


def _tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    if tool.strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def _tool_choice_to_wire(tool_choice: ToolChoice) -> str | dict[str, Any]:
    if isinstance(tool_choice, dict):
        return {"type": "function", "function": {"name": tool_choice["name"]}}
    return tool_choice


# =========================================================================================== response


def completion_to_response(completion: Completion, *, model: str, request_id: str, created: int) -> dict:
    """A `chat.completion` object for a completion."""
    message = completion.message
    wire_message: dict[str, Any] = {"role": "assistant", "content": message.content, "refusal": None}
    if message.tool_calls:
        wire_message["tool_calls"] = [call_to_wire(call) for call in message.tool_calls]
    if message.reasoning:
        wire_message["reasoning_content"] = message.reasoning
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": wire_message,
                "logprobs": None,
                "finish_reason": _wire_finish_reason(completion, has_calls=bool(message.tool_calls)),
            }
        ],
        "usage": usage_to_wire(completion.usage),
    }


def usage_to_wire(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage object; `prompt_tokens_details` only when the backend served tokens from a cache."""
    wire: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_prompt_tokens:
        wire["prompt_tokens_details"] = {"cached_tokens": usage.cached_prompt_tokens}
    return wire


def _wire_finish_reason(completion: Completion, *, has_calls: bool) -> str:
    reason = completion.finish_reason
    if reason in ("length", "content_filter"):
        return reason
    if has_calls:
        return "tool_calls"
    return "stop" if reason == "error" else reason


def response_to_completion(response: Any) -> Completion:
    """The completion a `chat.completion` object holds (a dict or the `openai` SDK's ChatCompletion)."""
    data = _as_dict(response)
    if "error" in data and not data.get("choices"):
        raise LLMError(f"The LLM server answered with an error: {_error_message(data['error'])}")
    choices = data.get("choices") or []
    if not choices:
        raise LLMError("The LLM server's response has no choices.")
    choice = choices[0]
    wire = choice.get("message") or {}
    calls = [_call_to_canonical(WireToolCall.model_validate(call)) for call in wire.get("tool_calls") or []]
    if wire.get("function_call"):
        calls.append(_call_to_canonical(WireToolCall(function=FunctionCallBody(**wire["function_call"]))))
    message = Message(
        role="assistant",
        content=wire.get("content") or None,
        tool_calls=calls,
        reasoning=wire.get("reasoning_content") or wire.get("reasoning") or None,
    )
    return Completion(
        message=message,
        finish_reason=_canonical_finish_reason(choice.get("finish_reason"), has_calls=bool(calls)),
        usage=_usage_from_wire(data.get("usage")),
        model=data.get("model"),
    )


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if hasattr(value, "model_dump"):
        return value.model_dump()
    raise TypeError(f"expected a dict or an openai SDK object, got {type(value).__name__}")


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _usage_from_wire(usage: dict[str, Any] | None) -> Usage:
    if not usage:
        return Usage()
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=usage.get("prompt_tokens") or 0,
        completion_tokens=usage.get("completion_tokens") or 0,
        cached_prompt_tokens=(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


_KNOWN_FINISH_REASONS: frozenset[str] = frozenset({"stop", "length", "tool_calls", "content_filter"})


def _canonical_finish_reason(raw: str | None, *, has_calls: bool) -> FinishReason:
    # Servers disagree: some say "stop" or "function_call" after a call, some invent their own words.
    if raw in ("length", "content_filter"):
        return raw
    if has_calls:
        return "tool_calls"
    if raw in _KNOWN_FINISH_REASONS and raw != "tool_calls":
        return raw  # type: ignore[return-value]
    return "stop"


# ========================================================================================== streaming


class ChunkEncoder:
    """Turns canonical stream events into `chat.completion.chunk` dicts exactly as OpenAI streams them.

    A tool call goes out as one delta with index, id, type, name and empty arguments, then argument
    fragments whose concatenation equals the final arguments JSON. Whatever the FinishEvent's completion
    holds that was not streamed before (a backend that only reports the finish) is sent before the finish.
    """

    def __init__(self, model: str, request_id: str, created: int, include_usage: bool = False) -> None:
        self.model = model
        self.request_id = request_id
        self.created = created
        self.include_usage = include_usage
        self._started = False
        self._text_sent = False
        self._wire_index: dict[int, int] = {}
        self._call_ids: dict[int, str] = {}
        self._arguments_sent: dict[int, str] = {}
        self._ended: set[int] = set()
        self._finished = False

    def encode(self, event: StreamEvent) -> list[dict]:
        if self._finished:
            return []
        chunks: list[dict] = []
        if not self._started:
            self._started = True
            chunks.append(self._chunk({"role": "assistant", "content": ""}))
        match event:
            case TextDeltaEvent(text=text) if text:
                self._text_sent = True
                chunks.append(self._chunk({"content": text}))
            case ReasoningDeltaEvent(text=text) if text:
                chunks.append(self._chunk({"reasoning_content": text}))
            case ToolCallStartEvent(index=index, id=call_id, name=name):
                chunks += self._start_call(index, call_id, name)
            case ToolCallDeltaEvent(index=index, arguments_delta=fragment):
                chunks += self._send_arguments(index, fragment)
            case ToolCallEndEvent(index=index, call=call):
                chunks += self._end_call(index, call)
            case FinishEvent(completion=completion):
                chunks += self._finish(completion)
        return chunks

    def _start_call(self, index: int, call_id: str, name: str) -> list[dict]:
        if index in self._wire_index:
            return []
        self._wire_index[index] = len(self._wire_index)
        self._call_ids[index] = call_id
        self._arguments_sent[index] = ""
        first = {
            "index": self._wire_index[index],
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        return [self._chunk({"tool_calls": [first]})]

    def _send_arguments(self, index: int, fragment: str) -> list[dict]:
        if not fragment or index not in self._wire_index or index in self._ended:
            return []
        self._arguments_sent[index] += fragment
        delta = {"index": self._wire_index[index], "function": {"arguments": fragment}}
        return [self._chunk({"tool_calls": [delta]})]

    def _end_call(self, index: int, call: ToolCall) -> list[dict]:
        if index in self._ended:
            return []
        chunks = self._start_call(index, call.id, call.name)
        final = call.arguments_json()
        sent = self._arguments_sent[index]
        if final.startswith(sent):
            chunks += self._send_arguments(index, final[len(sent) :])
        elif _json_or_none(sent) != call.arguments:
            logger.warning("streamed arguments of call %s differ from its final arguments", call.id)
        self._ended.add(index)
        return chunks

    def _finish(self, completion: Completion) -> list[dict]:
        chunks: list[dict] = []
        message = completion.message
        if message.content and not self._text_sent:
            self._text_sent = True
            chunks.append(self._chunk({"content": message.content}))
        index_by_id = {call_id: index for index, call_id in self._call_ids.items()}
        next_index = max(self._wire_index, default=-1) + 1
        for call in message.tool_calls:
            index = index_by_id.get(call.id)
            if index is None:
                index, next_index = next_index, next_index + 1
            if index not in self._ended:
                chunks += self._end_call(index, call)
        self._finished = True
        reason = _wire_finish_reason(completion, has_calls=bool(self._wire_index))
        chunks.append(self._chunk({}, finish_reason=reason))
        if self.include_usage:
            chunks.append(self._envelope([], usage=usage_to_wire(completion.usage)))
        return chunks

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope([choice])

    def _envelope(self, choices: list[dict], usage: dict[str, Any] | None = None) -> dict:
        chunk: dict[str, Any] = {
            "id": self.request_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        return chunk


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


@dataclass
class _CallState:
    index: int
    id: str | None = None
    name: str | None = None
    started: bool = False
    ended: bool = False
    pending_arguments: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)


class ChunkDecoder:
    """Turns `chat.completion.chunk`s (dicts or the `openai` SDK's objects) into canonical stream events.

    Copes with what servers really send: the whole arguments in one delta, the name and arguments in the
    same delta, no `index`, an index reused for a second call with a new id, and usage in any chunk.
    Call `finish()` after the last chunk for the closing events and the assembled completion.
    """

    def __init__(self) -> None:
        self.model: str | None = None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: list[_CallState] = []
        self._by_wire_index: dict[int, _CallState] = {}
        self._finished = False

    def decode(self, chunk: Any) -> list[StreamEvent]:
        data = _as_dict(chunk)
        if data.get("error"):
            raise LLMError(f"The LLM server reported an error mid-stream: {_error_message(data['error'])}")
        self.model = data.get("model") or self.model
        if data.get("usage"):
            self.usage = _usage_from_wire(data["usage"])
        events: list[StreamEvent] = []
        for choice in data.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            events += self._decode_delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                events += self._end_calls()
        return events

    def finish(self) -> list[StreamEvent]:
        """The closing events: the end of every open call and a FinishEvent with the whole completion."""
        if self._finished:
            return []
        self._finished = True
        events = self._end_calls()
        message = Message(
            role="assistant",
            content="".join(self._text) or None,
            reasoning="".join(self._reasoning) or None,
            tool_calls=[self._tool_call(state) for state in self._calls if state.started],
        )
        completion = Completion(
            message=message,
            finish_reason=_canonical_finish_reason(self.finish_reason, has_calls=bool(message.tool_calls)),
            usage=self.usage or Usage(),
            model=self.model,
        )
        return [*events, FinishEvent(completion=completion)]

    def _decode_delta(self, delta: dict[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            self._reasoning.append(reasoning)
            events.append(ReasoningDeltaEvent(text=reasoning))
        if delta.get("content"):
            self._text.append(delta["content"])
            events.append(TextDeltaEvent(text=delta["content"]))
        tool_calls = list(delta.get("tool_calls") or [])
        if delta.get("function_call"):
            tool_calls.append({"index": 0, "function": delta["function_call"]})
        for wire_call in tool_calls:
            events += self._decode_call_delta(wire_call)
        return events

    def _decode_call_delta(self, wire_call: dict[str, Any]) -> list[StreamEvent]:
        function = wire_call.get("function") or {}
        call_id, name = wire_call.get("id"), function.get("name")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = json.dumps(arguments, ensure_ascii=False)
        events: list[StreamEvent] = []
        state = self._state_for(wire_call.get("index"), call_id, name, events)
        state.id = state.id or call_id
        state.name = state.name or name
        if arguments:
            (state.arguments if state.started else state.pending_arguments).append(arguments)
            if state.started:
                events.append(ToolCallDeltaEvent(index=state.index, arguments_delta=arguments))
        if not state.started and state.name:
            state.started = True
            state.id = state.id or new_call_id()
            events.append(ToolCallStartEvent(index=state.index, id=state.id, name=state.name))
            if state.pending_arguments:
                pending = "".join(state.pending_arguments)
                state.arguments.append(pending)
                state.pending_arguments.clear()
                events.append(ToolCallDeltaEvent(index=state.index, arguments_delta=pending))
        return events

    def _state_for(
        self, wire_index: int | None, call_id: str | None, name: str | None, events: list[StreamEvent]
    ) -> _CallState:
        if wire_index is None:
            known = next((c for c in self._calls if call_id and c.id == call_id), None)
            if known is not None:
                return known
            if call_id is None and self._calls and (name is None or self._calls[-1].name is None):
                return self._calls[-1]
            return self._new_state(None)
        state = self._by_wire_index.get(wire_index)
        if state is None:
            return self._new_state(wire_index)
        if call_id and state.id and call_id != state.id and name:
            # Some servers number every call 0: a new id with a name is a new call.
            events += self._end_call(state)
            return self._new_state(wire_index)
        return state

    def _new_state(self, wire_index: int | None) -> _CallState:
        state = _CallState(index=len(self._calls))
        self._calls.append(state)
        if wire_index is not None:
            self._by_wire_index[wire_index] = state
        return state

    def _end_calls(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for state in self._calls:
            events += self._end_call(state)
        return events

    def _end_call(self, state: _CallState) -> list[StreamEvent]:
        if not state.started or state.ended:
            return []
        state.ended = True
        return [ToolCallEndEvent(index=state.index, call=self._tool_call(state))]

    @staticmethod
    def _tool_call(state: _CallState) -> ToolCall:
        return _tool_call_from_text(state.id or new_call_id(), state.name or "", "".join(state.arguments))
