"""A test backend that replays raw model text through a chat format's stream parser.

It lets the parsers be tested end to end through the HTTP API (what a client sees for a given raw output)
without a model: the text is fed in small chunks, exactly as the local engine feeds generated tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from fncall.errors import LLMError
from fncall.formats.chat import ChatFormat, get_format
from fncall.llms.base import BaseLLM, StreamAssembler
from fncall.types import (
    Completion,
    FinishEvent,
    GenerationParams,
    Message,
    StreamEvent,
    ToolChoice,
    ToolSpec,
    Usage,
)

RawText = str | Callable[[Sequence[Message]], str]


class Replay(BaseLLM):
    """Replays `outputs` (raw texts, or functions of the messages) as the model's output, in order.

    `chunk_chars` sets how many characters are fed to the parser at a time; `truncated=True` reports the
    last output as cut off by max_tokens (finish_reason "length").
    """

    def __init__(
        self,
        outputs: Iterable[RawText],
        *,
        chat_format: str | ChatFormat = "hermes",
        chunk_chars: int = 3,
        truncated: bool = False,
        model: str = "replay",
    ) -> None:
        self.model = model
        self.chat_format = get_format(chat_format) if isinstance(chat_format, str) else chat_format
        self.chunk_chars = max(1, chunk_chars)
        self.truncated = truncated
        self._outputs = list(outputs)
        self._served = 0

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        if self._served >= len(self._outputs):
            raise LLMError(f"replay backend has no output left (asked {self._served + 1} times)")
        output = self._outputs[self._served]
        self._served += 1
        text = output(messages) if callable(output) else output
        offered = [] if tool_choice == "none" else list(tools)
        parser = self.chat_format.stream_parser(offered)
        assembler = StreamAssembler()
        for start in range(0, len(text), self.chunk_chars):
            for event in parser.feed(text[start : start + self.chunk_chars]):
                assembler.add(event)
                yield event
        for event in parser.finish(truncated=self.truncated):
            assembler.add(event)
            yield event
        message = assembler.message()
        finish = "length" if self.truncated else ("tool_calls" if message.tool_calls else "stop")
        usage = Usage(prompt_tokens=sum(len(m.text) for m in messages) // 4, completion_tokens=len(text) // 4)
        yield FinishEvent(
            completion=Completion(message=message, finish_reason=finish, usage=usage, model=self.model)
        )
