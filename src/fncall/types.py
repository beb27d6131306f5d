"""The canonical data model every layer speaks.

Provider wire formats (OpenAI, Anthropic) and model chat formats (Hermes, Llama 3 ...) convert to and from
these types at their edge; nothing inside fncall passes provider-shaped dicts around.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's `call_...` shape (24 random hex characters)."""
    return "call_" + uuid.uuid4().hex[:24]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------------- tools


class ToolSpec(_Model):
    """What a model is told about a tool: its name, what it does and a JSON Schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool = False


class ToolCall(_Model):
    """A model's request to run one tool.

    `arguments` is always a dict. When the model's argument text was not a JSON object, `arguments` is empty
    and `unparsed_arguments` holds the raw text, so the executor can tell the model what to fix instead of
    the run crashing.
    """

    id: str = Field(default_factory=new_call_id)
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    unparsed_arguments: str | None = None

    def arguments_json(self) -> str:
        """The arguments as a JSON string (OpenAI's wire form); the raw text when they never parsed."""
        if self.unparsed_arguments is not None:
            return self.unparsed_arguments
        return json.dumps(self.arguments, ensure_ascii=False)

    def signature(self) -> str:
        """A stable key for "the same call" (name and arguments), used by loop detection."""
        if self.unparsed_arguments is not None:
            return f"{self.name}:{self.unparsed_arguments}"
        return f"{self.name}:{json.dumps(self.arguments, sort_keys=True, ensure_ascii=False)}"


class ToolResult(_Model):
    """The outcome of one tool call. `content` is the text the model reads; `data` the value, if any."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    data: Any = None


NamedToolChoice = Annotated[dict[Literal["name"], str], Field(description='{"name": "<tool>"}')]
ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


def forced_tool_name(tool_choice: ToolChoice | None) -> str | None:
    """The tool a named `tool_choice` forces, or None for auto/none/required."""
    return tool_choice["name"] if isinstance(tool_choice, dict) else None


# ------------------------------------------------------------------------------------------ messages


class Message(_Model):
    """One chat message. Role-specific fields are checked: only assistants carry `tool_calls`, and
    tool messages must name the call they answer."""

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False
    reasoning: str | None = None

    @model_validator(mode="after")
    def _check_role_fields(self) -> Message:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only assistant messages carry tool_calls, not {self.role!r} messages")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        if self.role != "tool" and (self.tool_call_id or self.is_error):
            raise ValueError("tool_call_id and is_error belong to tool messages only")
        return self

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str | None = None, tool_calls: list[ToolCall] | None = None) -> Message:
        return cls(role="assistant", content=content, tool_calls=tool_calls or [])

    @classmethod
    def tool(cls, result: ToolResult) -> Message:
        return cls(
            role="tool",
            content=result.content,
            tool_call_id=result.call_id,
            name=result.name,
            is_error=result.is_error,
        )

    @property
    def text(self) -> str:
        return self.content or ""


# ------------------------------------------------------------------------------------ generation


class GenerationParams(_Model):
    """Per-request generation settings; None means the backend's default."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    parallel_tool_calls: bool = True
    # Stop once this many calls are written (the answer policy's proposals); backends that cannot stop
    # early ignore it.
    max_tool_calls: int | None = None
    response_format: dict[str, Any] | None = None
    # Constrained decoding of tool calls (local engine): None = the engine's default policy.
    constrained: bool | None = None
    # A GBNF grammar the whole reply must match (local engine; llama.cpp's server field of the same name).
    grammar: str | None = None
    # Offer tools as typed signatures instead of the template's JSON (local engine): None = the backend's
    # default. The answer policy asks for the template's JSON once results are in play.
    compact_tools: bool | None = None


class Usage(_Model):
    """Token counts. `cached_prompt_tokens`: how many of the prompt tokens came from a cache instead of
    being evaluated (OpenAI's `prompt_tokens_details.cached_tokens`)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
        )


class Completion(_Model):
    """One LLM response: an assistant message, why generation stopped, and the tokens it cost."""

    message: Message
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    model: str | None = None

    @model_validator(mode="after")
    def _check_assistant(self) -> Completion:
        if self.message.role != "assistant":
            raise ValueError("a completion's message must be an assistant message")
        return self


# -------------------------------------------------------------------------------- stream events


class TextDeltaEvent(_Model):
    type: Literal["text_delta"] = "text_delta"
    text: str


class ReasoningDeltaEvent(_Model):
    type: Literal["reasoning_delta"] = "reasoning_delta"
    text: str


class ToolCallStartEvent(_Model):
    """A tool call begins: sent once per call, before any of its argument fragments."""

    type: Literal["tool_call_start"] = "tool_call_start"
    index: int
    id: str
    name: str


class ToolCallDeltaEvent(_Model):
    """A fragment of a call's arguments JSON; the fragments of one index concatenate to the whole."""

    type: Literal["tool_call_delta"] = "tool_call_delta"
    index: int
    arguments_delta: str


class ToolCallEndEvent(_Model):
    type: Literal["tool_call_end"] = "tool_call_end"
    index: int
    call: ToolCall


class FinishEvent(_Model):
    """The last event of a stream; carries the whole completion, assembled."""

    type: Literal["finish"] = "finish"
    completion: Completion


StreamEvent = Annotated[
    TextDeltaEvent
    | ReasoningDeltaEvent
    | ToolCallStartEvent
    | ToolCallDeltaEvent
    | ToolCallEndEvent
    | FinishEvent,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------------- agent events


class StepStartedEvent(_Model):
    type: Literal["step_started"] = "step_started"
    step: int


class LLMResponseEvent(_Model):
    type: Literal["llm_response"] = "llm_response"
    step: int
    completion: Completion
    duration_s: float


class ToolCallEvent(_Model):
    type: Literal["tool_call"] = "tool_call"
    step: int
    call: ToolCall


class ToolResultEvent(_Model):
    type: Literal["tool_result"] = "tool_result"
    step: int
    result: ToolResult
    duration_s: float


class AgentTextDeltaEvent(_Model):
    """Text the model is writing during a streamed run."""

    type: Literal["agent_text_delta"] = "agent_text_delta"
    step: int
    text: str


class FinalAnswerEvent(_Model):
    type: Literal["final_answer"] = "final_answer"
    text: str
    outcome: str = "answered"


class ErrorEvent(_Model):
    type: Literal["error"] = "error"
    message: str
    kind: str = "error"
    step: int | None = None


AgentEvent = Annotated[
    StepStartedEvent
    | LLMResponseEvent
    | ToolCallEvent
    | ToolResultEvent
    | AgentTextDeltaEvent
    | FinalAnswerEvent
    | ErrorEvent,
    Field(discriminator="type"),
]
