"""The LLM service over a scripted model with fixed latency, as a process of its own for benchmark 4.

    python -m bench.scripted_service --port 8123 --latency 0.1

The model answers the benchmark's 3-step task by itself: `add(2, 3)`, then `add(5, 5)`, then the answer,
going by how many tool results the conversation holds, so any number of concurrent runs can share it.
"""

from __future__ import annotations

import argparse

from bench.task import ANSWER, scripted_call
from fncall.llms.scripted import Scripted, ScriptedRequest
from fncall.types import ToolCall


def scripted_llm(latency_s: float) -> Scripted:
    """A Scripted backend that plays the task and forgets requests (it records them for tests)."""
    llm: Scripted

    def respond(request: ScriptedRequest) -> ToolCall | str:
        llm.requests.clear()
        arguments = scripted_call(sum(1 for message in request.messages if message.role == "tool"))
        return ANSWER if arguments is None else ToolCall(name="add", arguments=arguments)

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
