"""Benchmark 3: serving the embedded model: fncall's LLM service against llama-cpp-python itself.

Two comparisons, each side by side on the same GGUF (Qwen2.5-Coder-0.5B Q4_K_M) and thread count:

1. Decode speed and time to first token: `fncall serve-llm --llm local:` (streamed over HTTP with the
   openai SDK) against `llama_cpp.Llama.create_completion` called in this process on the same prompt
   tokens (rendered by fncall's chat format from the GGUF's own template, checked to be the same length
   the service reports).
2. A 4-step agent conversation (6 tools, three tool rounds and an answer) sent to fncall's service and to
   `llama_cpp.server` with the same messages: prefix reuse of the system + tools prompt between steps is
   where a server saves time. Every run starts with its own random id in the system prompt, so no run
   starts warm from another (docs: "Engine speed facts").
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.charts import grouped_bar_chart
from bench.context import BenchContext
from bench.report import Section, Table, package_version
from bench.servers import PYTHON, VENV_BIN, ServerProcess, free_port
from bench.stats import Spread, paired_ratios

NAME = "local_serving"
TITLE = "3. Local serving on the embedded model"

# One thread per side by default: on a shared 2-core machine llama.cpp's 2-thread barriers collapse when
# another job takes a core (measured here: 1 token/s instead of 27). FNCALL_BENCH_THREADS overrides it.
THREADS = int(os.environ.get("FNCALL_BENCH_THREADS", "1"))
N_CTX = 8192
DECODE_TOKENS = 64
STEP_MAX_TOKENS = 32
# fncall's default answer policy turns a reply after tool results into its own answer step (a different,
# tool-free prompt); with it off the service makes one plain generation per request, as llama_cpp.server does.
RAW_MODEL_OPTION = "&answer_policy=off"
DECODE_TARGET = 0.95
ESSAY_SYSTEM = "You are a knowledgeable writer. Answer in plain prose."
ESSAY_REQUEST = "Write a long, detailed essay about the history of the bicycle, from 1817 to today."
AGENT_SYSTEM = (
    "You are a financial assistant. Use the tools to look up facts; never guess numbers. Answer briefly."
)
AGENT_QUESTION = (
    "Convert 250 US dollars to euros, then tell me Apple's current stock price and its latest news."
)


# -------------------------------------------------------------------------------------------- tools


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def agent_tools() -> list[dict[str, Any]]:
    """Six tools in OpenAI's wire form: the seed's three and three more of the same kind."""
    string = {"type": "string"}
    return [
        _function(
            "convert_currency",
            "Convert from one currency to another. Result is returned in the 'converted_amount' key.",
            {
                "from_currency": {"type": "string", "description": "The source currency, e.g. USD"},
                "to_currency": {"type": "string", "description": "The target currency, e.g. CAD"},
                "amount": {"type": "number", "description": "The amount to be converted"},
            },
            ["from_currency", "to_currency", "amount"],
        ),
        _function(
            "get_current_stock_price",
            "Get the current stock price for a given symbol.",
            {"symbol": {"type": "string", "description": "The stock symbol (ticker), e.g. AAPL."}},
            ["symbol"],
        ),
        _function(
            "get_company_news",
            "Get the latest news headlines for a company.",
            {"symbol": {"type": "string", "description": "The stock symbol (ticker), e.g. AAPL."}},
            ["symbol"],
        ),
        _function(
            "get_weather",
            "Get the current weather in a city.",
            {"city": string, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            ["city"],
        ),
        _function(
            "search_web",
            "Search the web and return the top results.",
            {"query": string, "max_results": {"type": "integer", "minimum": 1, "maximum": 10}},
            ["query"],
        ),
        _function(
            "send_email",
            "Send an email to a recipient.",
            {"to": string, "subject": string, "body": string},
            ["to", "subject", "body"],
        ),
    ]


# The three tool rounds of the conversation: (call, result) pairs the client replays after each step.
AGENT_ROUNDS: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
    (
        "convert_currency",
        {"from_currency": "USD", "to_currency": "EUR", "amount": 250},
        {"from_currency": "USD", "to_currency": "EUR", "converted_amount": 230.0},
    ),
    ("get_current_stock_price", {"symbol": "AAPL"}, {"symbol": "AAPL", "price": 189.84, "currency": "USD"}),
    (
        "get_company_news",
        {"symbol": "AAPL"},
        {"symbol": "AAPL", "headlines": ["Apple unveils new MacBook Air", "Apple expands services revenue"]},
    ),
)


# ------------------------------------------------------------------------------------- measurement


@dataclass
class StreamTiming:
    """One streamed generation: time to first token, decode rate after it, tokens on both sides."""

    ttft_s: float
    decode_tps: float
    prompt_tokens: int
    completion_tokens: int


def essay_messages(run_id: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": f"Run {run_id}. {ESSAY_SYSTEM}"},
        {"role": "user", "content": ESSAY_REQUEST},
    ]


class DirectLlama:
    """llama-cpp-python's `Llama`, loaded in this process like fncall loads it, prompted with the tokens
    fncall's chat format renders from the GGUF's own template."""

    def __init__(self, model_path: str) -> None:
        import llama_cpp

        from fncall.formats.chat import ChatTemplate, detect_format

        self.llama = llama_cpp.Llama(
            model_path=model_path,
            n_ctx=N_CTX,
            n_threads=THREADS,
            n_threads_batch=THREADS,
            logits_all=False,
            verbose=False,
        )
        template_text = self.llama.metadata["tokenizer.chat_template"]
        self._add_bos = self.llama.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self._template = ChatTemplate(
            template_text,
            bos_token=self._token_text(self.llama.token_bos()),
            eos_token=self._token_text(self.llama.token_eos()),
        )
        self._format = detect_format(template_text)

    def _token_text(self, token: int) -> str:
        return self.llama.detokenize([token], special=True).decode("utf-8", errors="replace")

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        from fncall.types import Message

        prompt = self._format.render(
            [Message(**message) for message in messages],
            [],
            template=self._template,
            add_generation_prompt=True,
        )
        return self.llama.tokenize(prompt.encode("utf-8"), add_bos=self._add_bos, special=True)

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> StreamTiming:
        tokens = self.prompt_tokens(messages)
        started = time.perf_counter()
        stamps = []
        for chunk in self.llama.create_completion(
            tokens, max_tokens=max_tokens, temperature=0.0, stream=True
        ):
            if chunk["choices"][0]["text"]:
                stamps.append(time.perf_counter())
        return _timing(started, stamps, len(tokens), len(stamps))


def service_stream(base_url: str, messages: list[dict[str, str]], max_tokens: int) -> StreamTiming:
    """One streamed chat completion from an OpenAI-compatible server, timed per content chunk."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=300.0)
    started = time.perf_counter()
    stamps = []
    usage = None
    stream = client.chat.completions.create(
        model="local",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.perf_counter())
    client.close()
    if usage is None:
        raise RuntimeError("the service sent no usage with include_usage")
    return _timing(started, stamps, usage.prompt_tokens, usage.completion_tokens)


def _timing(started: float, stamps: list[float], prompt_tokens: int, completion_tokens: int) -> StreamTiming:
    if len(stamps) < 2 or completion_tokens < 2:
        raise RuntimeError(f"too few tokens to time decoding ({completion_tokens})")
    decode_s = stamps[-1] - stamps[0]
    return StreamTiming(
        stamps[0] - started, (completion_tokens - 1) / decode_s, prompt_tokens, completion_tokens
    )


@dataclass
class AgentRunTiming:
    total_s: float
    step_s: list[float]
    prompt_tokens: list[int]
    completion_tokens: list[int]


def tool_exchange(call_id: str, name: str, arguments: dict[str, Any], result: Any) -> list[dict[str, Any]]:
    """The messages a client appends after a tool round: the assistant's call and the tool's result."""
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    return [
        {"role": "assistant", "content": "", "tool_calls": [call]},  # llama_cpp.server rejects null content
        {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)},
    ]


def agent_run(base_url: str) -> AgentRunTiming:
    """The 4-step conversation against one server: each step sends everything so far with the 6 tools;
    after steps 1-3 the client appends the scripted call and its result (the same for every server, so
    each server gets exactly the same requests), step 4 asks for the answer."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=600.0)
    run_id = uuid.uuid4().hex[:12]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": f"Run {run_id}. {AGENT_SYSTEM}"},
        {"role": "user", "content": AGENT_QUESTION},
    ]
    tools = agent_tools()
    steps, prompts, completions = [], [], []
    started = time.perf_counter()
    for step in range(len(AGENT_ROUNDS) + 1):
        step_started = time.perf_counter()
        response = client.chat.completions.create(
            model="local",
            messages=messages,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
            max_tokens=STEP_MAX_TOKENS,
            temperature=0.0,
        )
        steps.append(time.perf_counter() - step_started)
        prompts.append(response.usage.prompt_tokens if response.usage else 0)
        completions.append(response.usage.completion_tokens if response.usage else 0)
        if step < len(AGENT_ROUNDS):
            name, arguments, result = AGENT_ROUNDS[step]
            messages += tool_exchange(f"call_{run_id}_{step}", name, arguments, result)
    client.close()
    return AgentRunTiming(time.perf_counter() - started, steps, prompts, completions)


# ------------------------------------------------------------------------------------------ servers


def fncall_service(extra_options: str = "") -> ServerProcess:
    """`fncall serve-llm` on the embedded model; `extra_options` are more `local:` spec options."""
    port = free_port()
    spec = f"local:?threads={THREADS}&n_ctx={N_CTX}{extra_options}"
    command = [
        str(VENV_BIN / "fncall"),
        "serve-llm",
        "--llm",
        spec,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return ServerProcess(command, port, health_path="/health")


def llama_cpp_server(model_path: str) -> ServerProcess:
    """llama-cpp-python's own OpenAI-compatible server with its defaults, except context and threads."""
    port = free_port()
    command = [
        PYTHON,
        "-m",
        "llama_cpp.server",
        "--model",
        model_path,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(N_CTX),
        "--n_threads",
        str(THREADS),
        "--n_threads_batch",
        str(THREADS),
    ]
    return ServerProcess(command, port, health_path="/v1/models")


def run(context: BenchContext) -> Section:
    from fncall.engine.models import resolve

    model_path = str(resolve(None))
    repeats = 1 if context.quick else 3
    decode_tokens = 24 if context.quick else DECODE_TOKENS
    direct = DirectLlama(model_path)
    direct_runs: list[StreamTiming] = []
    service_runs: list[StreamTiming] = []
    ours_agent: list[AgentRunTiming] = []
    raw_agent: list[AgentRunTiming] = []
    peer_agent: list[AgentRunTiming] = []
    with (
        fncall_service() as ours,
        fncall_service(RAW_MODEL_OPTION) as raw,
        llama_cpp_server(model_path) as peer,
    ):
        service_stream(ours.base_url, essay_messages("warm-up"), 4)  # load pages, untimed
        direct.stream(essay_messages("warm-up"), 4)
        rss = {"fncall serve-llm": ours.rss_bytes(), "llama_cpp.server": peer.rss_bytes()}
        rss["fncall serve-llm, answer policy off"] = raw.rss_bytes()

        def measure_direct() -> None:
            direct_runs.append(direct.stream(essay_messages(uuid.uuid4().hex[:12]), decode_tokens))

        def measure_service() -> None:
            messages = essay_messages(uuid.uuid4().hex[:12])
            timing = service_stream(ours.base_url, messages, decode_tokens)
            expected = len(direct.prompt_tokens(messages))
            if timing.prompt_tokens != expected:
                raise RuntimeError(
                    f"the service saw {timing.prompt_tokens} prompt tokens where fncall's rendering gives "
                    f"{expected}: the two sides would not decode from the same prompt"
                )
            service_runs.append(timing)

        for repeat in range(repeats):
            # Alternate who goes first, so drift in the machine's load does not favour one side.
            order = (
                (measure_direct, measure_service) if repeat % 2 == 0 else (measure_service, measure_direct)
            )
            for measure in order:
                measure()
        for repeat in range(repeats):
            servers = [(ours, ours_agent), (raw, raw_agent), (peer, peer_agent)]
            for server, timings in servers if repeat % 2 == 0 else reversed(servers):
                timings.append(agent_run(server.base_url))
        rss_after = {"fncall serve-llm": ours.rss_bytes(), "llama_cpp.server": peer.rss_bytes()}
        rss_after["fncall serve-llm, answer policy off"] = raw.rss_bytes()
    agent_runs = {
        "fncall": ours_agent,
        "fncall, answer policy off": raw_agent,
        "llama_cpp.server": peer_agent,
    }
    return _section(direct_runs, service_runs, agent_runs, rss, rss_after, repeats, decode_tokens)


def _section(
    direct_runs: list[StreamTiming],
    service_runs: list[StreamTiming],
    agent_runs: dict[str, list[AgentRunTiming]],
    rss: dict[str, int],
    rss_after: dict[str, int],
    repeats: int,
    decode_tokens: int,
) -> Section:
    direct_tps = [run.decode_tps for run in direct_runs]
    service_tps = [run.decode_tps for run in service_runs]
    direct_ttft = [run.ttft_s for run in direct_runs]
    service_ttft = [run.ttft_s for run in service_runs]
    decode_ratio = paired_ratios(service_tps, direct_tps)
    ttft_ratio = paired_ratios(service_ttft, direct_ttft)
    decode_table = Table(
        f"Decode and time to first token ({decode_tokens} tokens, prompt of {direct_runs[0].prompt_tokens} "
        "tokens, greedy)",
        ["figure", "Llama direct", "fncall service", "fncall ÷ direct"],
        [
            [
                "decode tokens/s",
                Spread.of(direct_tps).format(1),
                Spread.of(service_tps).format(1),
                decode_ratio.format(3),
            ],
            [
                "time to first token (ms)",
                Spread.of(direct_ttft).scaled(1e3).format(0),
                Spread.of(service_ttft).scaled(1e3).format(0),
                ttft_ratio.format(2),
            ],
            [
                "completion tokens",
                Spread.of([run.completion_tokens for run in direct_runs]).format(0),
                Spread.of([run.completion_tokens for run in service_runs]).format(0),
                "",
            ],
        ],
    )
    agent_table = _agent_table(agent_runs)
    ours_agent, raw_agent, peer_agent = agent_runs.values()
    agent_ratio = paired_ratios([run.total_s for run in peer_agent], [run.total_s for run in ours_agent])
    raw_ratio = paired_ratios([run.total_s for run in peer_agent], [run.total_s for run in raw_agent])
    memory_table = Table(
        "Server memory (RSS, MiB)",
        ["server", "after warm-up", "after the benchmark"],
        [[name, f"{rss[name] / 2**20:,.0f}", f"{rss_after[name] / 2**20:,.0f}"] for name in rss],
    )
    verdict = "met" if decode_ratio.median >= DECODE_TARGET else "missed"
    findings = [
        f"Decode: fncall's service streams {decode_ratio.format(3)}x the tokens/s of `Llama` called directly "
        f"(target ≥ {DECODE_TARGET}: {verdict}); time to first token {ttft_ratio.format(2)}x direct.",
        f"4-step agent conversation: llama_cpp.server takes {agent_ratio.format(2)}x the time of fncall's "
        f"service with its default answer policy ({_median_total(ours_agent):.1f} s vs "
        f"{_median_total(peer_agent):.1f} s per run) and {raw_ratio.format(2)}x the time of fncall's "
        f"with the policy off ({_median_total(raw_agent):.1f} s), the like-for-like serving comparison "
        "(>1: fncall faster).",
    ]
    method = (
        f"Model: the embedded Qwen2.5-Coder-0.5B-Instruct Q4_K_M, {THREADS} thread(s) on every side "
        "(`FNCALL_BENCH_THREADS`; 1 by default because other jobs share the 2 cores and llama.cpp's "
        f"multi-thread barriers collapse under contention), n_ctx {N_CTX}, greedy. "
        "**Decode and first token:** `fncall serve-llm --llm 'local:?threads=N'` in its own process, "
        "streamed through the "
        "openai SDK with `include_usage`, against `llama_cpp.Llama.create_completion(tokens, "
        "stream=True)` in "
        "the benchmark process (`logits_all=False`, as fncall loads it) on the same prompt tokens, rendered "
        "by fncall's chat format from the GGUF's template (the service's reported prompt length is checked "
        "against it). Time to first token is measured from the request to the first text; decode rate is "
        "(tokens - 1) ÷ (last text - first text); the direct side counts one token per streamed chunk. "
        "**Agent conversation:** the same 4 requests (system + question + 6 tools; after steps 1-3 the "
        "client "
        "appends a fixed call and its result, so both servers get identical requests whatever the model "
        f"writes; at most {STEP_MAX_TOKENS} tokens per step) sent to fncall's service and to "
        f"`python -m llama_cpp.server` {package_version('llama_cpp_python')} with its defaults "
        "(`logits_all=True`, its Jinja chat handler from the GGUF template) except n_ctx and threads. "
        "Each run "
        "has a fresh random id at the start of its system prompt, so a run never reuses another's cache; "
        "reuse between the steps of one run is what is being compared. fncall's service runs twice: with "
        "its default answer policy (after tool results it may answer in a separate, tool-free generation, "
        "so its prompts differ from step to step) and with `answer_policy=off` (one plain generation per "
        "request, like the peer). "
        f"{repeats} repeats; within a repeat both sides run back to back, alternating who goes first. Other "
        "engineers' jobs share the 2 cores, so absolute times vary between repeats; the ratios are per "
        "repeat."
    )
    chart = grouped_bar_chart(
        "bench_local_serving.png",
        title="Local serving: decode, first token and a 4-step agent conversation",
        groups=["decode tokens/s", "first token (x100 ms)", "agent run, policy off (s)"],
        series={
            "fncall service": [
                Spread.of(service_tps),
                Spread.of(service_ttft).scaled(10),
                Spread.of([run.total_s for run in raw_agent]),
            ],
            "Llama direct / llama_cpp.server": [
                Spread.of(direct_tps),
                Spread.of(direct_ttft).scaled(10),
                Spread.of([run.total_s for run in peer_agent]),
            ],
        },
        unit="value (see group)",
    )
    return Section(NAME, TITLE, method, [decode_table, agent_table, memory_table], [chart], findings)


def _median_total(runs: list[AgentRunTiming]) -> float:
    return Spread.of([run.total_s for run in runs]).median


def _agent_table(agent_runs: dict[str, list[AgentRunTiming]]) -> Table:
    """Whole-run and per-step times of each server, with the peer's time over each fncall variant's."""
    names = list(agent_runs)
    peer = agent_runs[names[-1]]
    rows = [
        ["whole run (s)"]
        + [Spread.of([run.total_s for run in agent_runs[name]]).format(2) for name in names]
        + [
            paired_ratios([run.total_s for run in peer], [run.total_s for run in agent_runs[name]]).format(2)
            for name in names[:-1]
        ]
    ]
    for step in range(len(AGENT_ROUNDS) + 1):
        rows.append(
            [f"step {step + 1} (s)"]
            + [Spread.of([run.step_s[step] for run in agent_runs[name]]).format(2) for name in names]
            + [
                paired_ratios(
                    [run.step_s[step] for run in peer], [run.step_s[step] for run in agent_runs[name]]
                ).format(2)
                for name in names[:-1]
            ]
        )
        rows.append(
            [f"step {step + 1} prompt / completion tokens"]
            + [
                f"{agent_runs[name][0].prompt_tokens[step]} / {agent_runs[name][0].completion_tokens[step]}"
                for name in names
            ]
            + ["" for _ in names[:-1]]
        )
    return Table(
        "4-step agent conversation, 6 tools (times: lower is better; ratios: llama_cpp.server ÷ fncall, "
        ">1 means fncall is faster)",
        ["figure", *names, *(f"peer ÷ {name}" for name in names[:-1])],
        rows,
    )
