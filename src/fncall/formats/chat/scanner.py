"""The one incremental tool-call parser all chat formats share, configured by which syntaxes to recognise.

Every family writes calls as JSON objects (`{"name": ..., "arguments": {...}}`) inside some opener/closer:
Hermes tags, Markdown fences, bare objects, Llama's `<|python_tag|>`, Mistral's `[TOOL_CALLS]`. So one state
machine reads them all, a character at a time in amortised terms: plain text and JSON strings are skipped
with a regular expression, JSON values are delimited by a constant-state `JsonValueScanner`, and only a
short undecided tail (a possible trigger or closer, at most a few characters) is ever looked at twice.
Decisions depend on the characters alone, never on where chunks were cut, so any chunking gives the same
result, and `ChatFormat.parse` is this parser fed the whole text at once.

Explicit call syntax (tags, `<|python_tag|>`, `[TOOL_CALLS]`) accepts any tool name; fenced or bare JSON
("lenient" syntax, what small models really write) counts only when it names an offered tool, and anything
else is given back as text unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fncall.formats.chat.base import StreamParser
from fncall.formats.chat.json_scan import JsonValueScanner
from fncall.types import (
    ReasoningDeltaEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
    ToolSpec,
    new_call_id,
)

_WHITESPACE = " \t\r\n"
_NAME_KEYS = ("name",)
_ARGUMENT_KEYS = ("arguments", "parameters")
_LENIENT_KEYS = frozenset({"name", "arguments", "parameters", "type", "id"})
_FENCE_LANGUAGES = frozenset({"", "json"})
_MAX_KEY_CHARS = 64  # an undecided object's key longer than this is not a call key
_MAX_FENCE_LANGUAGE = 16
_MAX_MISTRAL_NAME = 128
_ARGS_MARK = "[ARGS]"
_CALL_ID_MARK = "[CALL_ID]"

# literal match results
_NO, _PARTIAL, _FULL = 0, 1, 2

# parser states
_TEXT = "text"
_THINK = "think"
_FENCE_HEAD = "fence_head"  # after ``` : a language tag and whitespace, then { or [ decides
_BODY = "body"  # inside a call syntax, between objects: whitespace, separators, list brackets, closer
_OBJECT = "object"  # inside a call object, outside keys and values
_KEY = "key"
_VALUE = "value"
_SKIP = "skip"  # the rest of a JSON object that turned out not to be a call: passed through as text
_MISTRAL_HEAD = "mistral_head"
_MISTRAL_NAME = "mistral_name"
_MISTRAL_ID = "mistral_id"
_MISTRAL_ARGS = "mistral_args"

# positions inside a call object (state _OBJECT)
_KEY_OR_END = "key_or_end"
_COLON = "colon"
_VALUE_START = "value_start"
_AFTER_VALUE = "after_value"


@dataclass(frozen=True)
class ScanRules:
    """Which call syntaxes one family's parser recognises."""

    tag: tuple[str, str] | None = None  # e.g. ("<tool_call>", "</tool_call>")
    python_tag: str | None = None  # "<|python_tag|>": JSON calls separated by ";" follow
    mistral_prefix: str | None = None  # "[TOOL_CALLS]": a JSON list, or name[ARGS]{...}
    lenient_json: bool = True  # fenced and bare JSON objects that name an offered tool
    think: tuple[str, str] | None = ("<think>", "</think>")


@dataclass
class _Context:
    """The call syntax the parser is inside: how objects in it are separated and what closes it."""

    explicit: bool  # the family's own call syntax: any tool name counts
    closer: str | None
    separators: str
    allow_list: bool
    in_list: bool = False
    objects_seen: bool = False


@dataclass
class _Call:
    """A call object being read. Committed (index >= 0) once its name is known and accepted."""

    explicit: bool
    name: str | None = None
    index: int = -1
    id: str = ""
    args: list[str] = field(default_factory=list)
    args_open: bool = False
    args_done: bool = False
    args_string: bool = False  # arguments written as a JSON string holding JSON (double-encoded)
    sent: bool = False  # an arguments delta was emitted

    @property
    def committed(self) -> bool:
        return self.index >= 0

    def arguments_text(self) -> str:
        """The arguments JSON text; a double-encoded string is decoded once."""
        raw = "".join(self.args)
        if self.args_string and self.args_done:
            try:
                decoded = json.loads(raw)
            except json.JSONDecodeError:
                return raw
            if isinstance(decoded, str):
                return decoded
        return raw


class _TrimmedSink:
    """Emits text without leading and trailing whitespace: trailing whitespace waits for more text, so the
    concatenated deltas equal the stripped whole. Whitespace right after a call is dropped, so the text on
    both sides of a call is joined by the whitespace that came before it."""

    def __init__(self, make_event: Callable[[str], StreamEvent]) -> None:
        self._make_event = make_event
        self._started = False
        self._after_call = False
        self._held: list[str] = []

    def mark_call(self) -> None:
        self._after_call = True

    def push(self, text: str, out: list[StreamEvent]) -> None:
        if self._after_call:
            text = text.lstrip()
            self._after_call = not text
        if not text:
            return
        body = text.rstrip()
        if not body:
            if self._started:
                self._held.append(text)
            return
        trailing = text[len(body) :]
        if self._started:
            body = "".join(self._held) + body
        else:
            body = body.lstrip()
            self._started = True
        self._held = [trailing] if trailing else []
        out.append(self._make_event(body))


def _match(data: str, pos: int, literal: str) -> int:
    """Whether `literal` is at `pos`: fully, possibly (the data ends inside it), or not."""
    available = len(data) - pos
    if available >= len(literal):
        return _FULL if data.startswith(literal, pos) else _NO
    return _PARTIAL if literal.startswith(data[pos:]) else _NO


def _held_suffix(data: str, pos: int, literal: str) -> int:
    """Length of the longest end of `data[pos:]` that could be the start of `literal`."""
    for size in range(min(len(literal) - 1, len(data) - pos), 0, -1):
        if data.endswith(literal[:size]):
            return size
    return 0


def _tool_call(call_id: str, name: str, raw_arguments: str) -> ToolCall:
    """A ToolCall from arguments text; text that is not a JSON object is kept as unparsed."""
    text = raw_arguments.strip() or "{}"
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        return ToolCall(id=call_id, name=name, unparsed_arguments=raw_arguments)
    return ToolCall(id=call_id, name=name, arguments=value)


class CallScanner(StreamParser):
    """The shared stream parser (see the module docstring). `steps` counts characters examined."""

    def __init__(self, rules: ScanRules, tools: Sequence[ToolSpec], *, reasoning_open: bool = False) -> None:
        self._rules = rules
        self._offered = frozenset(tool.name for tool in tools)
        self._state = _THINK if reasoning_open and rules.think else _TEXT
        self._pending = ""
        self._out: list[StreamEvent] = []
        self._text = _TrimmedSink(lambda text: TextDeltaEvent(text=text))
        self._reasoning = _TrimmedSink(lambda text: ReasoningDeltaEvent(text=text))
        self._raw: list[str] = []  # consumed text that goes back to content if no call comes of it
        self._ctx: _Context | None = None
        self._call: _Call | None = None
        self._next_index = 0
        self._truncated = False
        self.steps = 0
        # inside a call object
        self._object_at = _KEY_OR_END
        self._key_scanner = JsonValueScanner()
        self._key_parts: list[str] = []
        self._key_chars = 0
        self._key = ""
        self._value_scanner = JsonValueScanner()
        self._value_role = "ignore"
        self._value_parts: list[str] = []
        self._value_in_object = True
        self._skip_scanner = JsonValueScanner()
        # fence head and Mistral's name[ARGS] form
        self._fence_language: list[str] = []
        self._fence_spaced = False
        self._mistral_name: list[str] = []
        self._triggers = self._build_triggers()
        stop_chars = "".join(sorted({literal[0] for literal, _ in self._triggers}))
        self._text_stop = re.compile("[" + re.escape(stop_chars) + "]") if stop_chars else None
        self._handlers: dict[str, Callable[[str, int], int | None]] = {
            _TEXT: self._scan_text,
            _THINK: self._scan_think,
            _FENCE_HEAD: self._scan_fence_head,
            _BODY: self._scan_body,
            _OBJECT: self._scan_object,
            _KEY: self._scan_key,
            _VALUE: self._scan_value,
            _SKIP: self._scan_skip,
            _MISTRAL_HEAD: self._scan_mistral_head,
            _MISTRAL_NAME: self._scan_mistral_name,
            _MISTRAL_ID: self._scan_mistral_name,
            _MISTRAL_ARGS: self._scan_mistral_args,
        }

    # ------------------------------------------------------------------------------------- public API

    @property
    def in_call(self) -> bool:
        return self._state not in (_TEXT, _THINK, _SKIP)

    @property
    def truncated(self) -> bool:
        return self._truncated

    def feed(self, chunk: str) -> list[StreamEvent]:
        data = self._pending + chunk if self._pending else chunk
        self._pending = ""
        pos = 0
        while pos < len(data):
            advanced = self._handlers[self._state](data, pos)
            if advanced is None:  # undecided tail: wait for more text
                self._pending = data[pos:]
                break
            pos = advanced
        return self._take_events()

    def finish(self, *, truncated: bool = False) -> list[StreamEvent]:
        tail, self._pending = self._pending, ""
        state = self._state
        if state == _TEXT:
            self._text.push(tail, self._out)
        elif state == _THINK:
            self._reasoning.push(tail, self._out)
        elif state in (_OBJECT, _KEY, _VALUE, _MISTRAL_ARGS):
            self._finish_inside_call(truncated)
        elif state == _BODY and self._ctx is not None:
            # a partial closer at the very end is call syntax: dropped
            if not self._ctx.objects_seen:
                self._truncated |= self._ctx.explicit
                self._release_raw()
        elif state in (_MISTRAL_HEAD, _MISTRAL_NAME, _MISTRAL_ID):
            self._truncated = True
            self._raw.append(tail)
            self._release_raw()
        elif state == _FENCE_HEAD:
            self._release_raw()
        self._state = _TEXT
        self._ctx = None
        self._call = None
        return self._take_events()

    # ----------------------------------------------------------------------------------- text states

    def _build_triggers(self) -> list[tuple[str, Callable[[str], None]]]:
        rules = self._rules
        triggers: list[tuple[str, Callable[[str], None]]] = []
        if rules.think:
            triggers.append((rules.think[0], self._open_think))
        if rules.tag:
            triggers.append((rules.tag[0], self._open_tag))
        if rules.python_tag:
            triggers.append((rules.python_tag, self._open_python_tag))
        if rules.mistral_prefix:
            triggers.append((rules.mistral_prefix, self._open_mistral))
        if rules.lenient_json:
            triggers.append(("```", self._open_fence))
            triggers.append(("{", self._open_bare_object))
        return triggers

    def _scan_text(self, data: str, pos: int) -> int | None:
        match = self._text_stop.search(data, pos) if self._text_stop else None
        if match is None:
            self.steps += len(data) - pos
            self._text.push(data[pos:], self._out)
            return len(data)
        if match.start() > pos:
            self.steps += match.start() - pos
            self._text.push(data[pos : match.start()], self._out)
            return match.start()
        self.steps += 1
        undecided = False
        for literal, open_syntax in self._triggers:
            found = _match(data, pos, literal)
            if found == _FULL:
                self.steps += len(literal)
                open_syntax(literal)
                return pos + len(literal)
            undecided |= found == _PARTIAL
        if undecided:
            return None
        self._text.push(data[pos], self._out)
        return pos + 1

    def _scan_think(self, data: str, pos: int) -> int | None:
        assert self._rules.think is not None
        closer = self._rules.think[1]
        found = data.find(closer, pos)
        if found >= 0:
            self.steps += found + len(closer) - pos
            self._reasoning.push(data[pos:found], self._out)
            self._state = _TEXT
            return found + len(closer)
        held = _held_suffix(data, pos, closer)
        self.steps += len(data) - pos
        end = len(data) - held
        if end == pos:
            return None
        self._reasoning.push(data[pos:end], self._out)
        return end

    def _open_think(self, literal: str) -> None:
        self._state = _THINK

    def _open_tag(self, literal: str) -> None:
        assert self._rules.tag is not None
        self._raw = [literal]
        self._ctx = _Context(explicit=True, closer=self._rules.tag[1], separators=",", allow_list=True)
        self._state = _BODY

    def _open_python_tag(self, literal: str) -> None:
        self._raw = [literal]
        self._ctx = _Context(explicit=True, closer=None, separators=";,", allow_list=True)
        self._state = _BODY

    def _open_mistral(self, literal: str) -> None:
        self._raw = [literal]
        self._mistral_name = []
        self._state = _MISTRAL_HEAD

    def _open_fence(self, literal: str) -> None:
        self._raw = [literal]
        self._fence_language = []
        self._fence_spaced = False
        self._state = _FENCE_HEAD

    def _open_bare_object(self, literal: str) -> None:
        self._raw = []
        self._ctx = _Context(explicit=False, closer=None, separators=",;", allow_list=False)
        self._start_object(literal)

    def _scan_fence_head(self, data: str, pos: int) -> int:
        char = data[pos]
        self.steps += 1
        is_language_char = char.isalnum() or char in "_+-"
        if is_language_char and not self._fence_spaced and len(self._fence_language) < _MAX_FENCE_LANGUAGE:
            self._fence_language.append(char)
            self._raw.append(char)
            return pos + 1
        if char in _WHITESPACE:
            self._fence_spaced = True
            self._raw.append(char)
            return pos + 1
        language = "".join(self._fence_language).lower()
        if char in "{[" and language in _FENCE_LANGUAGES:
            self._ctx = _Context(explicit=False, closer="```", separators=",", allow_list=True)
            self._state = _BODY
            return pos
        self._release_raw()
        self._state = _TEXT
        return pos

    # ---------------------------------------------------------------------------- inside call syntax

    def _scan_body(self, data: str, pos: int) -> int | None:
        ctx = self._ctx
        assert ctx is not None
        char = data[pos]
        self.steps += 1
        if char in _WHITESPACE:
            self._raw.append(char)
            return pos + 1
        if char == "{":
            self._start_object(char)
            return pos + 1
        if char == "[" and ctx.allow_list and not ctx.in_list and not ctx.objects_seen:
            ctx.in_list = True
            self._raw.append(char)
            return pos + 1
        if char == "]" and ctx.in_list:
            ctx.in_list = False
            self._raw.append(char)
            if ctx.closer is None:
                self._end_context()
            return pos + 1
        if char in ctx.separators and (ctx.objects_seen or ctx.in_list):
            self._raw.append(char)
            return pos + 1
        if ctx.closer is not None and char == ctx.closer[0]:
            found = _match(data, pos, ctx.closer)
            if found == _PARTIAL:
                return None
            if found == _FULL:
                self.steps += len(ctx.closer)
                self._raw.clear()
                self._ctx = None
                self._state = _TEXT
                return pos + len(ctx.closer)
        self._end_context()
        return pos

    def _end_context(self) -> None:
        """Leaves the call syntax: what was consumed since the last call is text unless calls were made."""
        assert self._ctx is not None
        if self._ctx.objects_seen:
            self._raw.clear()
        else:
            self._release_raw()
        self._ctx = None
        self._state = _TEXT

    def _start_object(self, brace: str) -> None:
        assert self._ctx is not None
        self._raw.append(brace)
        self._call = _Call(explicit=self._ctx.explicit)
        self._object_at = _KEY_OR_END
        self._value_in_object = True
        self._state = _OBJECT

    def _scan_object(self, data: str, pos: int) -> int:
        char = data[pos]
        self.steps += 1
        if char in _WHITESPACE:
            self._consume(char)
            return pos + 1
        at = self._object_at
        if at == _KEY_OR_END and char == '"':
            self._key_scanner = JsonValueScanner()
            self._key_parts = []
            self._key_chars = 0
            self._state = _KEY
            return pos
        if at == _COLON and char == ":":
            self._consume(char)
            self._object_at = _VALUE_START
            return pos + 1
        if at == _VALUE_START:
            self._start_value(char)
            return pos
        if at == _AFTER_VALUE and char == ",":
            self._consume(char)
            self._object_at = _KEY_OR_END
            return pos + 1
        if at in (_KEY_OR_END, _AFTER_VALUE) and char == "}":
            self._consume(char)
            self._end_object()
            return pos + 1
        self._object_syntax_error()
        return pos

    def _scan_key(self, data: str, pos: int) -> int:
        scanner = self._key_scanner
        end = scanner.feed(data, pos)
        span = data[pos:end]
        self.steps += end - pos
        self._consume(span)
        self._key_parts.append(span)
        self._key_chars += len(span)
        call = self._call
        assert call is not None
        if not scanner.done:
            if not call.committed and self._key_chars > _MAX_KEY_CHARS:
                self._object_syntax_error()
            return end
        try:
            key = json.loads("".join(self._key_parts))
        except json.JSONDecodeError:
            self._object_syntax_error()
            return end
        self._key = key
        self._state = _OBJECT
        self._object_at = _COLON
        if not call.committed and not call.explicit and key not in _LENIENT_KEYS:
            self._reject_rest_of_object()
        return end

    def _start_value(self, first_char: str) -> None:
        call = self._call
        assert call is not None
        key = self._key
        role = "ignore"
        if key in _NAME_KEYS and call.name is None:
            role = "name"
            if first_char != '"':
                if not call.explicit:
                    self._reject_rest_of_object()
                    return
                role = "ignore"
        elif key in _ARGUMENT_KEYS and not call.args_open:
            role = "args"
            call.args_open = True
            call.args_string = first_char == '"'
        self._begin_value(role)

    def _begin_value(self, role: str) -> None:
        self._value_scanner = JsonValueScanner()
        self._value_role = role
        self._value_parts = []
        self._state = _VALUE

    def _scan_value(self, data: str, pos: int) -> int:
        scanner = self._value_scanner
        end = scanner.feed(data, pos)
        span = data[pos:end]
        self.steps += end - pos
        self._consume(span)
        call = self._call
        assert call is not None
        if self._value_role == "name":
            self._value_parts.append(span)
        elif self._value_role == "args" and span:
            call.args.append(span)
            if call.committed and not call.args_string:
                self._send_arguments(call, span)
        if scanner.done:
            self._end_value()
        return end

    def _end_value(self) -> None:
        call = self._call
        assert call is not None
        self._state = _OBJECT
        self._object_at = _AFTER_VALUE
        if self._value_role == "name":
            try:
                name = json.loads("".join(self._value_parts))
            except json.JSONDecodeError:
                name = None
            accepted = isinstance(name, str) and name and (call.explicit or name in self._offered)
            if accepted:
                call.name = name
                self._commit(call)
            elif not call.explicit:
                self._reject_rest_of_object()
        elif self._value_role == "args":
            call.args_done = True
            if call.committed and call.args_string:
                self._send_arguments(call, call.arguments_text())
        if not self._value_in_object and self._state == _OBJECT:
            self._finish_call(cut_off=False)
            self._ctx = None
            self._state = _TEXT

    def _end_object(self) -> None:
        call = self._call
        assert call is not None and self._ctx is not None
        if call.committed:
            self._finish_call(cut_off=False)
            self._ctx.objects_seen = True
            self._state = _BODY
        else:  # a well-formed object without an accepted name is text
            self._call = None
            self._ctx = None
            self._release_raw()
            self._state = _TEXT

    def _object_syntax_error(self) -> None:
        """Not JSON: an undecided object is text again; a committed call ends with what it has."""
        call = self._call
        assert call is not None and self._ctx is not None
        if call.committed:
            self._finish_call(cut_off=False)
            self._ctx.objects_seen = True
            self._state = _BODY
        else:
            self._call = None
            self._ctx = None
            self._release_raw()
            self._state = _TEXT

    def _reject_rest_of_object(self) -> None:
        """A lenient object that is not a call: it and the rest of it, to its closing brace, are text."""
        self._call = None
        self._ctx = None
        self._release_raw()
        self._skip_scanner = JsonValueScanner.inside_object()
        self._state = _SKIP

    def _scan_skip(self, data: str, pos: int) -> int:
        end = self._skip_scanner.feed(data, pos)
        self.steps += end - pos
        self._text.push(data[pos:end], self._out)
        if self._skip_scanner.done:
            self._state = _TEXT
        return end

    # --------------------------------------------------------------------------- Mistral name[ARGS]

    def _scan_mistral_head(self, data: str, pos: int) -> int:
        char = data[pos]
        self.steps += 1
        if char in _WHITESPACE:
            self._raw.append(char)
            return pos + 1
        if char in "[{":
            self._ctx = _Context(explicit=True, closer=None, separators=",", allow_list=True)
            self._state = _BODY
            return pos
        self._state = _MISTRAL_NAME
        return pos

    def _scan_mistral_name(self, data: str, pos: int) -> int | None:
        char = data[pos]
        self.steps += 1
        if char == "[":
            marks = (_ARGS_MARK,) if self._state == _MISTRAL_ID else (_ARGS_MARK, _CALL_ID_MARK)
            undecided = False
            for mark in marks:
                found = _match(data, pos, mark)
                if found == _FULL and (self._mistral_name or self._state == _MISTRAL_ID):
                    self.steps += len(mark)
                    self._raw.append(mark)
                    if mark == _CALL_ID_MARK:
                        self._state = _MISTRAL_ID
                    else:
                        self._start_mistral_call()
                    return pos + len(mark)
                undecided |= found == _PARTIAL
            if undecided:
                return None
        elif not char.isspace() and char not in "{}]" and len(self._mistral_name) < _MAX_MISTRAL_NAME:
            if self._state == _MISTRAL_NAME:
                self._mistral_name.append(char)
            self._raw.append(char)
            return pos + 1
        self._release_raw()
        self._state = _TEXT
        return pos

    def _start_mistral_call(self) -> None:
        self._ctx = _Context(explicit=True, closer=None, separators="", allow_list=False)
        call = _Call(explicit=True, name="".join(self._mistral_name))
        self._call = call
        self._commit(call)
        self._key = _ARGUMENT_KEYS[0]
        self._value_in_object = False
        self._state = _MISTRAL_ARGS

    def _scan_mistral_args(self, data: str, pos: int) -> int:
        char = data[pos]
        self.steps += 1
        if char in _WHITESPACE:
            return pos + 1
        self._start_value(char)
        return pos

    # ------------------------------------------------------------------------------------ emitting

    def _consume(self, span: str) -> None:
        """Consumed call-syntax text: kept for release while no call has been committed from it."""
        if self._call is None or not self._call.committed:
            self._raw.append(span)

    def _release_raw(self) -> None:
        text = "".join(self._raw)
        self._raw = []
        self._text.push(text, self._out)

    def _commit(self, call: _Call) -> None:
        call.index = self._next_index
        self._next_index += 1
        call.id = new_call_id()
        self._raw = []
        assert call.name is not None
        self._out.append(ToolCallStartEvent(index=call.index, id=call.id, name=call.name))
        if call.args_open and (call.args_done or not call.args_string):
            self._send_arguments(call, call.arguments_text())

    def _send_arguments(self, call: _Call, text: str) -> None:
        if text:
            call.sent = True
            self._out.append(ToolCallDeltaEvent(index=call.index, arguments_delta=text))

    def _finish_call(self, *, cut_off: bool) -> None:
        call = self._call
        assert call is not None and call.name is not None
        text = call.arguments_text()
        incomplete = cut_off and not call.args_done
        if not text.strip() and not incomplete:
            text = "{}"
        if not call.sent:
            self._send_arguments(call, text)
        if incomplete:
            self._truncated = True
            result = ToolCall(id=call.id, name=call.name, unparsed_arguments=text)
        else:
            result = _tool_call(call.id, call.name, text)
        self._out.append(ToolCallEndEvent(index=call.index, call=result))
        self._text.mark_call()
        self._call = None

    def _finish_inside_call(self, truncated: bool) -> None:
        if self._state == _VALUE:
            self._value_scanner.end_of_input()
            if self._value_scanner.done:
                self._end_value()
        call = self._call
        if call is None:
            return
        if call.committed:
            self._finish_call(cut_off=True)
        else:
            self._truncated |= call.explicit or truncated
            self._release_raw()

    def _take_events(self) -> list[StreamEvent]:
        events, self._out = self._out, []
        return events
