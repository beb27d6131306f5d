"""Finding where one JSON value ends in a stream of text, in constant state.

Stream parsers must not re-parse their whole buffer on every chunk (quadratic, and the top bug source of
other engines' tool parsers). This scanner keeps only nesting depth, whether it is inside a string and
whether the previous character was a backslash, so each character is looked at once, whatever the chunking.
It checks structure loosely (brackets and strings, not commas or colons): a value the model got slightly
wrong still ends where it should, and `json.loads` judges it afterwards.
"""

from __future__ import annotations

import re

_STRING_STOP = re.compile(r'["\\]')
_CONTAINER_STOP = re.compile(r'["\\{}\[\]]')
_SCALAR_STOP = re.compile(r"[,}\]\s]")


class JsonValueScanner:
    """Scans one JSON value (object, array, string or scalar) fed in pieces.

    `feed(data, pos)` consumes from `data[pos:]` and returns the index just after the value's last character,
    or `len(data)` when the value goes on. `steps` counts the characters it advanced over (its whole work).
    A scalar (number, true, false, null) ends before the first delimiter, which is left unconsumed; at the
    end of the stream call `end_of_input()` to close it.
    """

    __slots__ = ("_escape", "_in_string", "_kind", "depth", "done", "steps")

    def __init__(self) -> None:
        self._kind: str | None = None  # "container", "string" or "scalar" once the first character is seen
        self._in_string = False
        self._escape = False
        self.depth = 0
        self.done = False
        self.steps = 0

    @classmethod
    def inside_object(cls) -> JsonValueScanner:
        """A scanner already inside an object (depth 1): it runs to that object's closing brace."""
        scanner = cls()
        scanner._kind = "container"
        scanner.depth = 1
        return scanner

    @property
    def kind(self) -> str | None:
        return self._kind

    def feed(self, data: str, pos: int) -> int:
        end = len(data)
        while pos < end and not self.done:
            if self._kind is None:
                pos = self._start(data[pos], pos)
            elif self._escape:
                self._escape = False
                self.steps += 1
                pos += 1
            elif self._in_string:
                pos = self._scan_string(data, pos)
            elif self._kind == "scalar":
                match = _SCALAR_STOP.search(data, pos)
                stop = end if match is None else match.start()
                self.steps += stop - pos
                pos = stop
                self.done = match is not None
            else:
                pos = self._scan_container(data, pos)
        return pos

    def end_of_input(self) -> None:
        """The stream ended: a scalar is complete at this point; anything else stays unfinished."""
        if self._kind == "scalar":
            self.done = True

    def _start(self, char: str, pos: int) -> int:
        self.steps += 1
        if char in "{[":
            self._kind = "container"
            self.depth = 1
        elif char == '"':
            self._kind = "string"
            self._in_string = True
        else:
            self._kind = "scalar"
            return pos  # the scalar scan will look at this character again as part of the value
        return pos + 1

    def _scan_string(self, data: str, pos: int) -> int:
        match = _STRING_STOP.search(data, pos)
        if match is None:
            self.steps += len(data) - pos
            return len(data)
        self.steps += match.end() - pos
        if match.group() == "\\":
            self._escape = True
        else:
            self._in_string = False
            if self.depth == 0:
                self.done = True
        return match.end()

    def _scan_container(self, data: str, pos: int) -> int:
        match = _CONTAINER_STOP.search(data, pos)
        if match is None:
            self.steps += len(data) - pos
            return len(data)
        self.steps += match.end() - pos
        char = match.group()
        if char == '"':
            self._in_string = True
        elif char in "{[":
            self.depth += 1
        elif char in "}]":
            self.depth -= 1
            if self.depth == 0:
                self.done = True
        # a backslash outside a string is invalid JSON; it is passed over and json.loads reports it later
        return match.end()
