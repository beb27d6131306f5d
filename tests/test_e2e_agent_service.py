"""End to end: a service process killed mid-run, and the Exchange Assistant on the real embedded model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fncall.llms.scripted import Scripted
from fncall.memory import INTERRUPTED_ERROR
from fncall.server.app import create_app

SEED_QUERY = "I want to exchange 42 US dollars to Canadian dollars"

# The service in a child process: the scripted model calls convert_currency, then never answers.
_SERVICE_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import uvicorn
    from fncall.llms.scripted import Scripted
    from fncall.server.app import create_app
    from fncall.types import ToolCall

    async def respond(request):
        if request.messages[-1].role == "tool":
            await asyncio.sleep(3600)
        return ToolCall(name="convert_currency", arguments={"from_currency": "USD", "to_currency": "CAD",
                                                            "amount": 42})

    llm = Scripted(respond)
    app = create_app("scripted:", llm=llm, llm_factory=lambda spec: llm, database_url=sys.argv[1])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(check: Any, what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_run_is_marked_interrupted_on_the_next_start(serve_app: Any, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'fncall.db'}"
    script = tmp_path / "service.py"
    script.write_text(_SERVICE_SCRIPT)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    child = subprocess.Popen(
        [sys.executable, str(script), database_url, str(port)],
        env={**os.environ, "FNCALL_API_KEYS": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until(lambda: httpx.get(f"{base_url}/health").status_code == 200, "the service to start")
        accepted = httpx.post(
            f"{base_url}/v1/agents/exchange/runs", json={"input": SEED_QUERY, "background": True}
        )
        assert accepted.status_code == 202
        run = accepted.json()
        traces_url = f"{base_url}/v1/interactions/{run['id']}/traces"
        # the model's call and the tool's result are written; the second model step hangs
        _wait_until(lambda: len(httpx.get(traces_url).json()["data"]) == 2, "the first two traces")
        assert httpx.get(f"{base_url}/v1/runs/{run['id']}").json()["status"] == "running"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        assert child.stderr is not None
        child.stderr.close()

    llm = Scripted(lambda request: "unused")
    restarted = create_app(
        "scripted:", llm=llm, llm_factory=lambda spec: llm, database_url=database_url, api_keys=[]
    )
    with serve_app(restarted) as url, httpx.Client(base_url=url) as client:
        turns = client.get(f"/v1/memory/{run['memory_id']}/interactions").json()["data"]
        assert [(turn["id"], turn["status"], turn["error"]) for turn in turns] == [
            (run["id"], "interrupted", INTERRUPTED_ERROR)
        ]
        assert turns[0]["interrupted_at"] is not None
        traces = client.get(f"/v1/interactions/{run['id']}/traces").json()["data"]
        assert [trace["origin"] for trace in traces] == ["llm", "convert_currency"]
        assert json.loads(traces[1]["output"])["converted_amount"] == 131.95
        assert client.get(f"/v1/runs/{run['id']}").json()["status"] == "interrupted"
        assert client.post(f"/v1/runs/{run['id']}/cancel").status_code == 409


@pytest.mark.model
@pytest.mark.timeout(900)  # two model steps; minutes when other work shares this machine's two cores
def test_exchange_on_the_embedded_model(serve_app: Any, tmp_path: Path, local_qwen: Any) -> None:
    """The seed's request against the real model, served the way `fncall serve` does (LLM API included)."""
    app = create_app(llm=local_qwen, database_url=f"sqlite:///{tmp_path / 'fncall.db'}", api_keys=[])
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=900) as client:
        response = client.post("/exchange", json={"query": SEED_QUERY})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        answer = response.text
        assert answer.strip()
        conversations = client.get("/v1/memory", params={"agent_id": "exchange"}).json()["data"]
        assert len(conversations) == 1
        turns = client.get(f"/v1/memory/{conversations[0]['memory_id']}/interactions").json()["data"]
        assert [(turn["status"], turn["response"]) for turn in turns] == [("completed", answer)]
        traces = client.get(f"/v1/interactions/{turns[0]['id']}/traces").json()["data"]
        calls = [trace for trace in traces if trace["origin"] == "convert_currency"]
        assert calls, f"the model did not call convert_currency: {traces}"
        arguments = json.loads(calls[0]["input"])
        assert (arguments["from_currency"].upper(), arguments["to_currency"].upper()) == ("USD", "CAD")
        assert float(arguments["amount"]) == 42
        assert json.loads(calls[0]["output"])["converted_amount"] == 131.95
        assert "131.95" in answer
        assert client.get("/v1/models").json()["data"][0]["id"] == local_qwen.model
