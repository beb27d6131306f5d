"""A small fake Triton Inference Server for tests: the KServe v2 generate extension over a scripted model.

It speaks what a TensorRT-LLM `ensemble` deployment speaks on its HTTP port:
`POST /v2/models/{model}/generate` (one JSON answer with `text_output`), `generate_stream` (Server-Sent
Events `data: {...}`, a few characters each, as deltas or accumulated), `GET /v2/health/ready`,
`GET /v2/models/{model}` metadata, and Triton's error objects `{"error": "..."}`. Instead of a model it
answers each generate request with the next raw text of its script (or a function of the request), and it
records every request body it received.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

Responder = Callable[[dict[str, Any]], str]

_TOKEN = re.compile(r"\s*\S+|\s+")  # a "token" of the fake: a word with the whitespace before it


@dataclass
class FakeTriton:
    """The fake's script and what it saw.

    `outputs`: the raw texts to generate, one per request in order, or a function of the request body.
    `failures`: HTTP statuses (e.g. 503, 429) to answer the first requests with, before serving any text.
    `echo_prompt`: `generate` returns the prompt followed by the text, as TensorRT-LLM does when
    exclude_input_in_output is off. `fail_stream_after`: send a Triton error event after that many chunks.
    `report_counts`: add `num_input_tokens`, `num_output_tokens` and `finish_reason` to answers (as the vLLM
    backend does when asked). Generation stops after `max_tokens` fake tokens (words).
    """

    outputs: Sequence[str] | Responder
    model_name: str = "ensemble"
    chunk_chars: int = 3
    stream_mode: Literal["delta", "accumulated"] = "delta"
    echo_prompt: bool = False
    failures: list[int] = field(default_factory=list)
    fail_stream_after: int | None = None
    report_counts: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    @property
    def prompts(self) -> list[str]:
        """The `text_input` of every generate request, in order."""
        return [str(body.get("text_input", "")) for body in self.requests]

    def next_output(self, body: dict[str, Any]) -> str:
        if callable(self.outputs):
            return self.outputs(body)
        index = len(self.requests) - 1
        if index >= len(self.outputs):
            raise IndexError(f"the fake Triton script has no output left (asked {index + 1} times)")
        return self.outputs[index]

    def app(self) -> FastAPI:
        """The ASGI app serving this fake."""
        return _build_app(self)


def _build_app(fake: FakeTriton) -> FastAPI:
    app = FastAPI(title="fake Triton")

    @app.get("/v2/health/ready")
    async def ready() -> JSONResponse:
        return JSONResponse({}, status_code=200)

    @app.get("/v2/models/{model}")
    async def metadata(model: str) -> JSONResponse:
        if model != fake.model_name:
            return _unknown_model(model)
        return JSONResponse(
            {
                "name": model,
                "versions": ["1"],
                "platform": "ensemble",
                "inputs": [
                    {"name": "text_input", "datatype": "BYTES", "shape": [-1, 1]},
                    {"name": "max_tokens", "datatype": "INT32", "shape": [-1, 1]},
                    {"name": "stream", "datatype": "BOOL", "shape": [-1, 1]},
                ],
                "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1, -1]}],
            }
        )

    @app.post("/v2/models/{model}/generate")
    async def generate(model: str, request: Request) -> JSONResponse:
        prepared = await _prepare(fake, model, request)
        if isinstance(prepared, JSONResponse):
            return prepared
        _, prompt, tokens, finished = prepared
        text = "".join(tokens)
        answer = _answer(fake, model, (prompt + text) if fake.echo_prompt else text)
        if fake.report_counts:
            answer.update(_counts(prompt, tokens, finished))
        return JSONResponse(answer)

    @app.post("/v2/models/{model}/generate_stream", response_model=None)
    async def generate_stream(model: str, request: Request) -> JSONResponse | StreamingResponse:
        prepared = await _prepare(fake, model, request)
        if isinstance(prepared, JSONResponse):
            return prepared
        _, prompt, tokens, finished = prepared
        return StreamingResponse(
            _events(fake, model, prompt, tokens, finished), media_type="text/event-stream"
        )

    return app


async def _prepare(
    fake: FakeTriton, model: str, request: Request
) -> JSONResponse | tuple[dict[str, Any], str, list[str], str]:
    """Checks a generate request like Triton does and decides the generated tokens."""
    fake.paths.append(request.url.path)
    if fake.failures:
        status = fake.failures.pop(0)
        headers = {"retry-after": "0"} if status == 429 else None
        return JSONResponse({"error": f"fake failure {status}"}, status_code=status, headers=headers)
    if model != fake.model_name:
        return _unknown_model(model)
    try:
        body = json.loads(await request.body())
    except json.JSONDecodeError as error:
        return JSONResponse({"error": f"failed to parse the request JSON buffer: {error}"}, status_code=400)
    if not isinstance(body, dict) or not isinstance(body.get("text_input"), str):
        return JSONResponse({"error": "input 'text_input' is missing from the request"}, status_code=400)
    fake.requests.append(body)
    tokens = _TOKEN.findall(fake.next_output(body))
    max_tokens = body.get("max_tokens")
    finished = "stop"
    if isinstance(max_tokens, int) and len(tokens) > max_tokens:
        tokens, finished = tokens[:max_tokens], "length"
    return body, body["text_input"], tokens, finished


async def _events(
    fake: FakeTriton, model: str, prompt: str, tokens: list[str], finished: str
) -> AsyncIterator[bytes]:
    text = "".join(tokens)
    chunks = [text[start : start + fake.chunk_chars] for start in range(0, len(text), fake.chunk_chars)]
    sent = ""
    for number, chunk in enumerate(chunks):
        if fake.fail_stream_after is not None and number >= fake.fail_stream_after:
            yield _sse({"error": "fake failure in the middle of the stream"})
            return
        sent += chunk
        answer = _answer(fake, model, chunk if fake.stream_mode == "delta" else sent)
        if fake.report_counts and number == len(chunks) - 1:
            answer.update(_counts(prompt, tokens, finished))
        yield _sse(answer)


def _answer(fake: FakeTriton, model: str, text: str) -> dict[str, Any]:
    return {"model_name": model, "model_version": "1", "text_output": text}


def _counts(prompt: str, tokens: list[str], finished: str) -> dict[str, Any]:
    return {
        "num_input_tokens": len(_TOKEN.findall(prompt)),
        "num_output_tokens": len(tokens),
        "finish_reason": finished,
    }


def _sse(answer: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(answer)}\n\n".encode()


def _unknown_model(model: str) -> JSONResponse:
    return JSONResponse({"error": f"Request for unknown model: '{model}' is not found"}, status_code=400)
