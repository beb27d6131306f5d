"""Anthropic's Messages wire format (and its Bedrock InvokeModel variant) to and from the canonical types.

Pure functions and small state machines, no I/O: the `/v1/messages` route and the Anthropic backend both
build on them, so a request our server accepts is one our backend would send, and the reverse.

Tool-call ids: canonical ids look like OpenAI's (`call_X`), Anthropic's like `toolu_X`. The prefix is swapped
at this edge in both directions, so ids stay stable across every round trip and each side sees its own shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, NoReturn

import jsonschema
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

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
)

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
DEFAULT_MAX_TOKENS = 1024

Canonical = tuple[list[Message], list[ToolSpec], ToolChoice, GenerationParams]

# ------------------------------------------------------------------------------------------ tool-call ids

_CANONICAL_ID_PREFIX = "call_"
_ANTHROPIC_ID_PREFIX = "toolu_"


def to_tool_use_id(call_id: str) -> str:
    """The Anthropic `tool_use` id of a canonical call id (`call_X` -> `toolu_X`; other ids unchanged)."""
    if call_id.startswith(_CANONICAL_ID_PREFIX):
        return _ANTHROPIC_ID_PREFIX + call_id.removeprefix(_CANONICAL_ID_PREFIX)
    return call_id


def to_call_id(tool_use_id: str) -> str:
    """The canonical call id of an Anthropic `tool_use` id (`toolu_X` -> `call_X`; other ids unchanged)."""
    if tool_use_id.startswith(_ANTHROPIC_ID_PREFIX):
        return _CANONICAL_ID_PREFIX + tool_use_id.removeprefix(_ANTHROPIC_ID_PREFIX)
    return tool_use_id


# ------------------------------------------------------------------------------------- request model


class _Lenient(BaseModel):
    """Anthropic adds fields often (cache_control, citations ...): unknown ones are ignored, not refused."""

    model_config = ConfigDict(extra="ignore")


class TextBlock(_Lenient):
    type: Literal["text"] = "text"
    text: str


class ToolUseBlock(_Lenient):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ThinkingBlock(_Lenient):
    type: Literal["thinking"] = "thinking"
    thinking: str = ""
    signature: str = ""


class OtherBlock(_Lenient):
    """A block type this server does not serve (image, document, server tools ...): kept to refuse it
    with a clear message instead of a validation error about a tagged union."""

    model_config = ConfigDict(extra="allow")
    type: str


_KNOWN_BLOCK_TYPES = {"text", "tool_use", "tool_result", "thinking"}


def _block_tag(value: Any) -> str:
    block_type = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return block_type if block_type in _KNOWN_BLOCK_TYPES else "other"


class ToolResultBlock(_Lenient):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str | list[TextBlock | OtherBlock] = ""
    is_error: bool = False

    def text(self) -> str:
        """The result as the text a model reads; non-text parts (images) are named, not dropped silently."""
        if isinstance(self.content, str):
            return self.content
        parts = [b.text if isinstance(b, TextBlock) else f"[{b.type} omitted]" for b in self.content]
        return "\n".join(parts)


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[OtherBlock, Tag("other")],
    Discriminator(_block_tag),
]


AnyBlock = TextBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | OtherBlock


class MessageParam(_Lenient):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class ToolParam(_Lenient):
    """A client tool. Server tools (a `type` such as `web_search_...`) have no input_schema here."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class ToolChoiceParam(_Lenient):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class MessagesRequest(_Lenient):
    """The body of `POST /v1/messages`. `top_k` and `metadata` are accepted and ignored."""

    model: str
    max_tokens: int = Field(ge=1)
    messages: list[MessageParam]
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] = Field(default_factory=list)
    tool_choice: ToolChoiceParam | None = None
    stop_sequences: list[str] = Field(default_factory=list)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stream: bool = False
    metadata: dict[str, Any] | None = None


def parse_request(body: Any) -> MessagesRequest:
    """A MessagesRequest from a decoded JSON body; validation errors become an InvalidRequestError that
    names the offending field, so a server can answer 400 in Anthropic's shape."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    try:
        return MessagesRequest.model_validate(body)
    except ValidationError as exc:
        deepest = max(exc.errors(), key=lambda error: len(error["loc"]))  # the most specific complaint
        param = _error_path(deepest["loc"])
        raise InvalidRequestError(f"{param}: {deepest['msg']}", param=param) from exc


_UNION_TAGS = {"text", "tool_use", "tool_result", "thinking", "other", "str", "TextBlock", "OtherBlock"}


def _error_path(location: Sequence[str | int]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _UNION_TAGS or "[" in part:
            continue  # pydantic's union-member labels are not fields the client wrote
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


# ------------------------------------------------------------------------------- request -> canonical


def to_canonical(request: MessagesRequest) -> Canonical:
    """The canonical conversation, tools, tool choice and generation settings of a Messages request."""
    tools = [_tool_spec(tool, index) for index, tool in enumerate(request.tools)]
    tool_choice, parallel = _canonical_tool_choice(request.tool_choice, tools)
    messages = _canonical_messages(request)
    params = GenerationParams(
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        stop=list(request.stop_sequences),
        parallel_tool_calls=parallel,
    )
    return messages, tools, tool_choice, params


def _tool_spec(tool: ToolParam, index: int) -> ToolSpec:
    param = f"tools[{index}]"
    if tool.type not in (None, "custom"):
        raise InvalidRequestError(
            f"{param}: server tool type {tool.type!r} is not supported here; send a client tool with an "
            "input_schema instead",
            param=f"{param}.type",
        )
    schema = tool.input_schema
    if schema is None:
        raise InvalidRequestError(f"{param}.input_schema: field required", param=f"{param}.input_schema")
    if schema.get("type") != "object":
        raise InvalidRequestError(
            f'{param}.input_schema: a tool\'s input_schema must have "type": "object"',
            param=f"{param}.input_schema",
        )
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequestError(
            f"{param}.input_schema is not a valid JSON Schema: {exc.message}", param=f"{param}.input_schema"
        ) from exc
    return ToolSpec(name=tool.name, description=tool.description, parameters=schema)


def _canonical_tool_choice(choice: ToolChoiceParam | None, tools: list[ToolSpec]) -> tuple[ToolChoice, bool]:
    if choice is None:
        return "auto", True
    parallel = not choice.disable_parallel_tool_use
    if choice.type == "auto":
        return "auto", parallel
    if choice.type == "none":
        return "none", parallel
    if not tools:
        raise InvalidRequestError(
            f'tool_choice.type "{choice.type}" needs tools, but the request offers none', param="tool_choice"
        )
    if choice.type == "any":
        return "required", parallel
    if not choice.name:
        raise InvalidRequestError('tool_choice.type "tool" needs a name', param="tool_choice.name")
    if choice.name not in {tool.name for tool in tools}:
        raise InvalidRequestError(
            f"tool_choice names the tool {choice.name!r}, which is not among the request's tools",
            param="tool_choice.name",
        )
    return {"name": choice.name}, parallel


def _canonical_messages(request: MessagesRequest) -> list[Message]:
    if not request.messages:
        raise InvalidRequestError("messages: at least one message is required", param="messages")
    messages: list[Message] = []
    system = _system_text(request.system)
    if system is not None:
        messages.append(Message.system(system))
    tool_names: dict[str, str] = {}  # tool_use id -> tool name, of the calls seen so far
    for index, turn in enumerate(request.messages):
        if turn.role == "assistant":
            message = _assistant_message(turn, index)
            tool_names.update({call.id: call.name for call in message.tool_calls})
            messages.append(message)
        else:
            messages.extend(_user_messages(turn, index, tool_names))
    return messages


def _system_text(system: str | list[TextBlock] | None) -> str | None:
    if system is None:
        return None
    if isinstance(system, str):
        return system or None
    return "\n".join(block.text for block in system) or None


def _unsupported_block(block: AnyBlock, param: str, role: str) -> NoReturn:
    raise InvalidRequestError(
        f"{param}: content blocks of type {block.type!r} are not supported in {role} messages here",
        param=param,
    )


def _assistant_message(turn: MessageParam, index: int) -> Message:
    if isinstance(turn.content, str):
        return Message.assistant(turn.content)
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for block_index, block in enumerate(turn.content):
        match block:
            case TextBlock(text=text):
                texts.append(text)
            case ThinkingBlock(thinking=thinking):
                reasoning.append(thinking)
            case OtherBlock(type="redacted_thinking"):
                continue  # encrypted reasoning of a hosted model: nothing another model can read
            case ToolUseBlock(id=block_id, name=name, input=arguments):
                calls.append(ToolCall(id=to_call_id(block_id), name=name, arguments=arguments))
            case _:
                _unsupported_block(block, f"messages[{index}].content[{block_index}]", "assistant")
    return Message(
        role="assistant",
        content="".join(texts) if texts else None,
        reasoning="".join(reasoning) or None,
        tool_calls=calls,
    )


def _user_messages(turn: MessageParam, index: int, tool_names: Mapping[str, str]) -> list[Message]:
    """A user turn: its tool results first (one tool message each, in order), then its text, if any."""
    if isinstance(turn.content, str):
        return [Message.user(turn.content)]
    results: list[Message] = []
    texts: list[str] = []
    for block_index, block in enumerate(turn.content):
        param = f"messages[{index}].content[{block_index}]"
        match block:
            case TextBlock(text=text):
                texts.append(text)
            case ToolResultBlock():
                call_id = to_call_id(block.tool_use_id)
                if call_id not in tool_names:
                    raise InvalidRequestError(
                        f"{param}.tool_use_id: {block.tool_use_id!r} answers no tool_use block of an earlier "
                        "assistant message",
                        param=f"{param}.tool_use_id",
                    )
                results.append(
                    Message(
                        role="tool",
                        content=block.text(),
                        tool_call_id=call_id,
                        name=tool_names[call_id],
                        is_error=block.is_error,
                    )
                )
            case _:
                _unsupported_block(block, param, "user")
    if texts or not results:
        results.append(Message.user("\n".join(texts)))
    return results


# ------------------------------------------------------------------------------- canonical -> request


def from_canonical(
    messages: Sequence[Message],
    tools: Sequence[ToolSpec] = (),
    tool_choice: ToolChoice = "auto",
    params: GenerationParams | None = None,
    *,
    model: str,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    stream: bool = False,
) -> dict[str, Any]:
    """The Messages request body a client sends for this conversation.

    System messages move to the top-level `system`; consecutive tool results (and a user message right
    after them) merge into one user turn, since Anthropic answers all calls of a turn in the next user turn.
    `max_tokens` is the default when `params.max_tokens` is unset: Anthropic requires one.
    """
    params = params or GenerationParams()
    body: dict[str, Any] = {"model": model, "max_tokens": params.max_tokens or max_tokens}
    system = "\n".join(m.text for m in messages if m.role == "system")
    if system:
        body["system"] = system
    body["messages"] = _wire_messages(messages)
    if tools:
        body["tools"] = [_wire_tool(tool) for tool in tools]
        wire_choice = _wire_tool_choice(tool_choice, params.parallel_tool_calls)
        if wire_choice is not None:
            body["tool_choice"] = wire_choice
    if params.stop:
        body["stop_sequences"] = list(params.stop)
    if params.temperature is not None:
        body["temperature"] = params.temperature
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if stream:
        body["stream"] = True
    return body


def _wire_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = []
    open_results: list[dict[str, Any]] | None = None  # the blocks of a user turn holding tool results
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            if open_results is None:
                open_results = []
                wire.append({"role": "user", "content": open_results})
            open_results.append(_wire_tool_result(message))
            continue
        if message.role == "user" and open_results is not None:
            open_results.append({"type": "text", "text": message.text})
            open_results = None
            continue
        open_results = None
        if message.role == "user":
            wire.append({"role": "user", "content": message.text})
        else:
            wire.append({"role": "assistant", "content": _wire_assistant_content(message)})
    return wire


def _wire_tool_result(message: Message) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": to_tool_use_id(message.tool_call_id or ""),
        "content": message.text,
    }
    if message.is_error:
        block["is_error"] = True
    return block


def _wire_assistant_content(message: Message) -> str | list[dict[str, Any]]:
    if not message.tool_calls:
        return message.text
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks.extend(_wire_tool_use(call) for call in message.tool_calls)
    return blocks


def _wire_tool_use(call: ToolCall) -> dict[str, Any]:
    """A tool_use block. Arguments that never parsed become `{}`: Anthropic only takes an object."""
    return {"type": "tool_use", "id": to_tool_use_id(call.id), "name": call.name, "input": call.arguments}


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    wire: dict[str, Any] = {"name": tool.name}
    if tool.description:
        wire["description"] = tool.description
    wire["input_schema"] = tool.parameters
    return wire


def _wire_tool_choice(tool_choice: ToolChoice, parallel: bool) -> dict[str, Any] | None:
    if isinstance(tool_choice, dict):
        wire: dict[str, Any] = {"type": "tool", "name": tool_choice["name"]}
    elif tool_choice == "required":
        wire = {"type": "any"}
    elif tool_choice == "none":
        return {"type": "none"}
    elif parallel:
        return None  # auto with parallel calls is Anthropic's default
    else:
        wire = {"type": "auto"}
    if not parallel:
        wire["disable_parallel_tool_use"] = True
    return wire


# ---------------------------------------------------------------------------------------------- Bedrock


def to_bedrock_body(
    messages: Sequence[Message],
    tools: Sequence[ToolSpec] = (),
    tool_choice: ToolChoice = "auto",
    params: GenerationParams | None = None,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> dict[str, Any]:
    """The InvokeModel body for Claude on Bedrock: the Messages body with `anthropic_version` and no
    `model` (Bedrock takes the model id in the URL) and no `stream` (streaming is another endpoint)."""
    body = from_canonical(messages, tools, tool_choice, params, model="", max_tokens=max_tokens)
    del body["model"]
    return {"anthropic_version": BEDROCK_ANTHROPIC_VERSION, **body}


def from_bedrock_body(body: Mapping[str, Any], model_id: str = "bedrock") -> Canonical:
    """The canonical request of an InvokeModel body; `model_id` stands in for the absent `model`."""
    version = body.get("anthropic_version")
    if version != BEDROCK_ANTHROPIC_VERSION:
        raise InvalidRequestError(
            f'anthropic_version must be "{BEDROCK_ANTHROPIC_VERSION}", not {version!r}',
            param="anthropic_version",
        )
    fields = {key: value for key, value in body.items() if key != "anthropic_version"}
    return to_canonical(parse_request({**fields, "model": model_id}))


# ------------------------------------------------------------------------------------ response side

_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}
_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


def stop_reason(completion: Completion, stop_sequence: str | None = None) -> str:
    """Anthropic's stop_reason for a completion; `stop_sequence` when one was given and generation stopped."""
    if stop_sequence is not None and completion.finish_reason == "stop":
        return "stop_sequence"
    return _STOP_REASONS[completion.finish_reason]


def completion_to_message(
    completion: Completion, *, model: str, message_id: str, stop_sequence: str | None = None
) -> dict[str, Any]:
    """The Messages response body of a completion: thinking, text, then tool_use blocks."""
    message = completion.message
    content: list[dict[str, Any]] = []
    if message.reasoning:
        content.append({"type": "thinking", "thinking": message.reasoning, "signature": ""})
    if message.content:
        content.append({"type": "text", "text": message.content})
    content.extend(_wire_tool_use(call) for call in message.tool_calls)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(completion, stop_sequence),
        "stop_sequence": stop_sequence if completion.finish_reason == "stop" else None,
        "usage": {
            "input_tokens": completion.usage.prompt_tokens,
            "output_tokens": completion.usage.completion_tokens,
        },
    }


def _as_dict(value: Any) -> dict[str, Any]:
    """A plain dict from a dict or an SDK model (which offers `to_dict`/`model_dump`)."""
    if isinstance(value, dict):
        return value
    for method in ("to_dict", "model_dump"):
        if hasattr(value, method):
            return getattr(value, method)()
    raise TypeError(f"expected a dict or an Anthropic SDK object, got {type(value).__name__}")


def message_to_completion(message: Any) -> Completion:
    """The completion of a Messages response (a dict or the `anthropic` SDK's Message)."""
    body = _as_dict(message)
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for block in body.get("content") or []:
        block = _as_dict(block)
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif block.get("type") == "tool_use":
            calls.append(_tool_call_of_input(block["id"], block["name"], block.get("input")))
    usage = body.get("usage") or {}
    finish = _FINISH_REASONS.get(body.get("stop_reason") or "", "tool_calls" if calls else "stop")
    return Completion(
        message=Message(
            role="assistant",
            content="".join(texts) if texts else None,
            reasoning="".join(reasoning) or None,
            tool_calls=calls,
        ),
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=usage.get("input_tokens") or 0, completion_tokens=usage.get("output_tokens") or 0
        ),
        model=body.get("model"),
    )


def _tool_call_of_input(tool_use_id: str, name: str, arguments: Any) -> ToolCall:
    call_id = to_call_id(tool_use_id)
    if isinstance(arguments, dict):
        return ToolCall(id=call_id, name=name, arguments=arguments)
    return ToolCall(id=call_id, name=name, unparsed_arguments=json.dumps(arguments))


def error_body(message: str, error_type: str = "invalid_request_error") -> dict[str, Any]:
    """An error in Anthropic's shape: the HTTP body of a failed request and the data of an `error` event."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


# ------------------------------------------------------------------------------------ stream encoder


class _OpenBlock:
    """A content block the encoder has started: its wire index and, for tool_use, the JSON sent so far."""

    def __init__(self, index: int, kind: str) -> None:
        self.index = index
        self.kind = kind
        self.sent_json: list[str] = []
        self.buffering = False  # set when a call's argument text does not start like a JSON object


class MessageStreamEncoder:
    """Turns canonical stream events into Anthropic's stream events (dicts; `sse` writes them out).

    The order is exactly Anthropic's: message_start; per block content_block_start, deltas,
    content_block_stop; message_delta (stop_reason, usage); message_stop. Text and calls that a backend put
    only in its FinishEvent are emitted there, so every stream describes the whole completion.
    """

    def __init__(self, *, model: str, message_id: str, input_tokens: int = 0) -> None:
        self.model = model
        self.message_id = message_id
        self.input_tokens = input_tokens
        self.started = False
        self.finished = False
        self._next_index = 0
        self._text: _OpenBlock | None = None
        self._thinking: _OpenBlock | None = None
        self._calls: dict[int, _OpenBlock] = {}  # canonical call index -> its block
        self._open: list[_OpenBlock] = []
        self._streamed_text = False

    def start(self) -> list[dict[str, Any]]:
        """The message_start event, once; nothing on later calls."""
        if self.started:
            return []
        self.started = True
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}]

    def encode(self, event: StreamEvent) -> list[dict[str, Any]]:
        """The Anthropic events for one canonical event (message_start first, if not sent yet)."""
        out = self.start()
        match event:
            case TextDeltaEvent(text=text) if text:
                self._streamed_text = True
                out += self._text_delta(text)
            case ReasoningDeltaEvent(text=text) if text:
                out += self._thinking_delta(text)
            case ToolCallStartEvent(index=index, id=call_id, name=name):
                out += self._start_call(index, call_id, name)
            case ToolCallDeltaEvent(index=index, arguments_delta=delta):
                out += self._call_delta(index, delta)
            case ToolCallEndEvent(index=index, call=call):
                out += self._end_call(index, call)
            case FinishEvent(completion=completion):
                out += self.finish(completion)
        return out

    def finish(self, completion: Completion, stop_sequence: str | None = None) -> list[dict[str, Any]]:
        """The closing events: what the stream has not yet shown of `completion`, then message_delta and
        message_stop. For streams that end without a FinishEvent, call it with the assembled completion."""
        out = self.start()
        if self.finished:
            return out
        self.finished = True
        message = completion.message
        if message.content and not self._streamed_text:
            out += self._text_delta(message.content)
        for index, call in enumerate(message.tool_calls):
            if index not in self._calls:
                out += self._start_call(index, call.id, call.name)
            out += self._end_call(index, call)
        out += self._close_all()
        usage: dict[str, int] = {"output_tokens": completion.usage.completion_tokens}
        if completion.usage.prompt_tokens:
            usage["input_tokens"] = completion.usage.prompt_tokens
        out.append(
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason(completion, stop_sequence),
                    "stop_sequence": stop_sequence if completion.finish_reason == "stop" else None,
                },
                "usage": usage,
            }
        )
        out.append({"type": "message_stop"})
        return out

    # -- blocks

    def _open_block(
        self, kind: str, content_block: dict[str, Any]
    ) -> tuple[_OpenBlock, list[dict[str, Any]]]:
        block = _OpenBlock(self._next_index, kind)
        self._next_index += 1
        self._open.append(block)
        return block, [{"type": "content_block_start", "index": block.index, "content_block": content_block}]

    def _close(self, block: _OpenBlock | None) -> list[dict[str, Any]]:
        if block is None or block not in self._open:
            return []
        self._open.remove(block)
        return [{"type": "content_block_stop", "index": block.index}]

    def _close_all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for block in list(self._open):
            out += self._close(block)
        return out

    def _text_delta(self, text: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._text is None or self._text not in self._open:
            out += self._close_all()
            self._text, start = self._open_block("text", {"type": "text", "text": ""})
            out += start
        delta = {"type": "text_delta", "text": text}
        return [*out, {"type": "content_block_delta", "index": self._text.index, "delta": delta}]

    def _thinking_delta(self, text: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._thinking is None or self._thinking not in self._open:
            out += self._close_all()
            self._thinking, start = self._open_block(
                "thinking", {"type": "thinking", "thinking": "", "signature": ""}
            )
            out += start
        delta = {"type": "thinking_delta", "thinking": text}
        return [*out, {"type": "content_block_delta", "index": self._thinking.index, "delta": delta}]

    def _start_call(self, index: int, call_id: str, name: str) -> list[dict[str, Any]]:
        out = self._close(self._text) + self._close(self._thinking)
        content_block = {"type": "tool_use", "id": to_tool_use_id(call_id), "name": name, "input": {}}
        self._calls[index], start = self._open_block("tool_use", content_block)
        return out + start

    def _call_delta(self, index: int, delta: str) -> list[dict[str, Any]]:
        block = self._calls.get(index)
        if block is None or block.buffering or not delta:
            return []
        if not block.sent_json and not delta.lstrip():
            return []  # leading whitespace: wait to see how the arguments start
        if not block.sent_json and not delta.lstrip().startswith("{"):
            block.buffering = True  # not a JSON object: send the parsed input at the end instead
            return []
        block.sent_json.append(delta)
        return [_json_delta(block.index, delta)]

    def _end_call(self, index: int, call: ToolCall) -> list[dict[str, Any]]:
        """Closes a call's block. When none of its arguments were streamed (a backend that sends calls
        whole, or argument text that is not a JSON object), the parsed input goes out as one delta, so the
        deltas of every tool_use block concatenate to its input."""
        block = self._calls[index]
        if block not in self._open:
            return []
        out: list[dict[str, Any]] = []
        if not block.sent_json:
            out.append(_json_delta(block.index, json.dumps(call.arguments, ensure_ascii=False)))
        return out + self._close(block)


def _json_delta(index: int, partial_json: str) -> dict[str, Any]:
    delta = {"type": "input_json_delta", "partial_json": partial_json}
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _parsed_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def sse(event: Mapping[str, Any]) -> str:
    """One server-sent event in Anthropic's framing: the event name is the payload's `type`."""
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False, separators=(',', ':'))}\n\n"


# ------------------------------------------------------------------------------------ stream decoder


class MessageStreamDecoder:
    """Turns Anthropic stream events (dicts or SDK event objects) into canonical stream events; the
    message_stop event yields the FinishEvent with the assembled completion."""

    def __init__(self) -> None:
        self.model: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.finished = False
        self._texts: list[str] = []
        self._reasoning: list[str] = []
        self._blocks: dict[int, dict[str, Any]] = {}  # wire index -> block state
        self._calls: list[ToolCall] = []

    def feed(self, event: Any) -> list[StreamEvent]:
        """The canonical events of one Anthropic event (often none: starts, stops and pings carry no data)."""
        data = _as_dict(event)
        handler = getattr(self, f"_on_{data.get('type')}", None)
        return handler(data) if handler is not None else []

    def completion(self) -> Completion:
        """The completion the events so far describe."""
        finish = _FINISH_REASONS.get(self.stop_reason or "", "tool_calls" if self._calls else "stop")
        message = Message(
            role="assistant",
            content="".join(self._texts) if self._texts else None,
            reasoning="".join(self._reasoning) or None,
            tool_calls=list(self._calls),
        )
        usage = Usage(prompt_tokens=self.input_tokens, completion_tokens=self.output_tokens)
        return Completion(message=message, finish_reason=finish, usage=usage, model=self.model)

    def _on_message_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        message = data.get("message") or {}
        self.model = message.get("model")
        self.input_tokens = (message.get("usage") or {}).get("input_tokens") or 0
        return []

    def _on_content_block_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        block = data.get("content_block") or {}
        index = data["index"]
        kind = block.get("type")
        if kind == "tool_use":
            call_index = sum(1 for b in self._blocks.values() if b["kind"] == "tool_use")
            call_id = to_call_id(block["id"])
            initial = block.get("input") or {}
            self._blocks[index] = {
                "kind": kind,
                "call_index": call_index,
                "id": call_id,
                "name": block["name"],
                "json": [],
                "initial": initial,
            }
            return [ToolCallStartEvent(index=call_index, id=call_id, name=block["name"])]
        self._blocks[index] = {"kind": kind}
        if kind == "text" and block.get("text"):
            return self._text(block["text"])
        if kind == "thinking" and block.get("thinking"):
            return self._thinking(block["thinking"])
        return []

    def _on_content_block_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta") or {}
        match delta.get("type"):
            case "text_delta":
                return self._text(delta.get("text", ""))
            case "thinking_delta":
                return self._thinking(delta.get("thinking", ""))
            case "input_json_delta":
                block = self._blocks.get(data["index"])
                fragment = delta.get("partial_json", "")
                if block is None or block["kind"] != "tool_use" or not fragment:
                    return []
                block["json"].append(fragment)
                return [ToolCallDeltaEvent(index=block["call_index"], arguments_delta=fragment)]
        return []

    def _on_content_block_stop(self, data: dict[str, Any]) -> list[StreamEvent]:
        block = self._blocks.get(data["index"])
        if block is None or block["kind"] != "tool_use":
            return []
        raw = "".join(block["json"])
        if raw.strip():
            parsed = _parsed_object(raw)
            call = (
                ToolCall(id=block["id"], name=block["name"], arguments=parsed)
                if isinstance(parsed, dict)
                else ToolCall(id=block["id"], name=block["name"], unparsed_arguments=raw)
            )
        else:
            call = _tool_call_of_input(block["id"], block["name"], block["initial"])
        self._calls.append(call)
        return [ToolCallEndEvent(index=block["call_index"], call=call)]

    def _on_message_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
        usage = data.get("usage") or {}
        if usage.get("output_tokens") is not None:
            self.output_tokens = usage["output_tokens"]
        if usage.get("input_tokens") is not None:
            self.input_tokens = usage["input_tokens"]
        return []

    def _on_message_stop(self, data: dict[str, Any]) -> list[StreamEvent]:
        self.finished = True
        return [FinishEvent(completion=self.completion())]

    def _on_error(self, data: dict[str, Any]) -> list[StreamEvent]:
        error = data.get("error") or {}
        raise LLMError(f"the stream reported an error ({error.get('type')}): {error.get('message')}")

    def _text(self, text: str) -> list[StreamEvent]:
        if not text:
            return []
        self._texts.append(text)
        return [TextDeltaEvent(text=text)]

    def _thinking(self, text: str) -> list[StreamEvent]:
        if not text:
            return []
        self._reasoning.append(text)
        return [ReasoningDeltaEvent(text=text)]


def decode_message_stream(events: Iterable[Any]) -> list[StreamEvent]:
    """All canonical events of a whole Anthropic event stream."""
    decoder = MessageStreamDecoder()
    out: list[StreamEvent] = []
    for event in events:
        out += decoder.feed(event)
    return out
