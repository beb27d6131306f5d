"""The LLM service over a scripted model with fixed latency, as a process of its own for benchmarks 4 and 5.

    python -m bench.scripted_service --port 8123 --latency 0.1

The model plays the benchmark's 3-step task by itself, going by how many tool results the conversation
holds, so any number of concurrent runs can share it: two tool calls, then the answer. It calls whichever
task tool the request offers: `add(2, 3)` and `add(5, 5)` when the client brings its own `add` tool (the
client-driven loop), or the built-in `convert_currency` (5 then 10 USD to EUR) for an agent registered on
`fncall serve`, whose specs can only name tools the server has.
"""

from __future__ import annotations

import argparse

from bench.task import ANSWER, scripted_call
from fncall.errors import LLMError
from fncall.llms.scripted import Scripted, ScriptedRequest
from fncall.types import ToolCall, ToolSpec

CLIENT_TOOL = "add"
SERVER_TOOL = "convert_currency"


def task_tool_call(tools: list[ToolSpec], arguments: dict[str, int]) -> ToolCall:
    """The task's `add(a, b)` step as a call to the task tool `tools` offer: `add` itself, or a
    `convert_currency` of the running total, so that each step's arguments differ as the task's do."""
    offered = {spec.name for spec in tools}
    if CLIENT_TOOL in offered:
        return ToolCall(name=CLIENT_TOOL, arguments=arguments)
    if SERVER_TOOL in offered:
        amount = float(sum(arguments.values()))
        return ToolCall(
            name=SERVER_TOOL, arguments={"from_currency": "USD", "to_currency": "EUR", "amount": amount}
        )
    raise LLMError(
        f"The scripted benchmark model needs the tool {CLIENT_TOOL!r} or {SERVER_TOOL!r}; the request "
        f"offered {sorted(offered) or 'no tools'}."
    )


def scripted_llm(latency_s: float) -> Scripted:
    """A Scripted backend that plays the task and forgets requests (it records them for tests)."""
    llm: Scripted

    def respond(request: ScriptedRequest) -> ToolCall | str:
        llm.requests.clear()
        arguments = scripted_call(sum(1 for message in request.messages if message.role == "tool"))
        return ANSWER if arguments is None else task_tool_call(request.tools, arguments)

    llm = Scripted(respond, latency_s=latency_s, model="scripted-latency")
    return llm


def main() -> None:
    import uvicorn

    from fncall.server.llm_api import create_llm_app

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.1)
    options = parser.parse_args()
    app = create_llm_app(scripted_llm(options.latency))
    uvicorn.run(app, host="127.0.0.1", port=options.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
