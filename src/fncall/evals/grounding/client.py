"""The client-side tool loop over HTTP, with the official `openai` SDK, exactly as a user would write it.

Send the question and the tools; when the reply holds tool calls, run the fake tools, append the assistant
message (`content: None` plus its `tool_calls`) and one `role: tool` message per call, and ask again; stop at
the first reply without calls (the answer) or after `max_rounds` requests. Any server failure ends the case
with the error recorded, never the run.
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai

from fncall.evals.grounding.cases import SYSTEM_PROMPT, GroundingCase
from fncall.evals.grounding.fake_tools import openai_tools, run_fake_tool
from fncall.evals.grounding.results import MadeCall, Transcript

DEFAULT_MAX_ROUNDS = 4
DEFAULT_MAX_TOKENS = 256
_REQUEST_TIMEOUT_S = 300.0


class OpenAIClientDriver:
    """Runs cases against any OpenAI-compatible server at `base_url`.

    `model` None asks the server which model it serves (`GET /v1/models`) before the first case.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str = "not-needed",
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout_s: float = _REQUEST_TIMEOUT_S,
    ) -> None:
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self.model = model
        self.max_rounds = max_rounds
        self.max_tokens = max_tokens

    async def aclose(self) -> None:
        await self.client.close()

    async def run_case(self, case: GroundingCase) -> Transcript:
        started = time.perf_counter()
        transcript = Transcript()
        try:
            await self._loop(case, transcript)
        except openai.APIStatusError as error:
            transcript.error = f"HTTP {error.status_code}: {_error_message(error)}"
        except openai.OpenAIError as error:
            transcript.error = f"{type(error).__name__}: {error}"
        except Exception as error:  # a malformed reply must fail this case, not the whole run
            transcript.error = f"{type(error).__name__}: {error}"
        transcript.seconds = time.perf_counter() - started
        return transcript

    async def _served_model(self) -> str:
        if self.model is None:
            try:
                models = await self.client.models.list()
                self.model = models.data[0].id if models.data else "default"
            except openai.OpenAIError:
                self.model = "default"
        return self.model

    async def _loop(self, case: GroundingCase, transcript: Transcript) -> None:
        model = await self._served_model()
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": case.question},
        ]
        tools = openai_tools(list(case.tools))
        for round_number in range(1, self.max_rounds + 1):
            transcript.rounds = round_number
            response = await self.client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                tools=tools,  # type: ignore[arg-type]
                tool_choice="auto",
                temperature=0,
                max_tokens=self.max_tokens,
            )
            if not response.choices:
                raise ValueError("the response has no choices")
            message = response.choices[0].message
            if not message.tool_calls:
                transcript.answer = message.content or ""
                return
            wire_calls: list[dict[str, Any]] = []
            tool_messages: list[dict[str, Any]] = []
            for wire_call in message.tool_calls:
                function = getattr(wire_call, "function", None)
                name = function.name if function else ""
                raw = function.arguments if function else ""
                call = _made_call(name, raw, round_number)
                transcript.calls.append(call)
                wire_calls.append(
                    {"id": wire_call.id, "type": "function", "function": {"name": name, "arguments": raw}}
                )
                tool_messages.append({"role": "tool", "tool_call_id": wire_call.id, "content": call.result})
            messages.append({"role": "assistant", "content": None, "tool_calls": wire_calls})
            messages.extend(tool_messages)
        transcript.error = f"no answer after {self.max_rounds} rounds: the model kept calling tools"


def _made_call(name: str, raw_arguments: str, round_number: int) -> MadeCall:
    """Parse one call's arguments and run the fake tool, as the client would."""
    try:
        arguments = json.loads(raw_arguments or "{}")
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        return MadeCall(
            name=name,
            unparsed_arguments=raw_arguments,
            round=round_number,
            result=f"Error: the arguments of {name} are not a JSON object: {raw_arguments!r}.",
            is_error=True,
        )
    outcome = run_fake_tool(name, arguments)
    return MadeCall(
        name=name, arguments=arguments, round=round_number, result=outcome.content, is_error=outcome.is_error
    )


def _error_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(error.message)
