"""Declarative agents: an `AgentSpec` (JSON or YAML) says what an agent is; `build_agent` makes it runnable.

    name: exchange
    type: react                      # function_calling | react | flow
    llm: {spec: "local:", parameters: {temperature: 0}}
    system_prompt: You convert currencies.
    memory: {type: conversation, message_history_limit: 10}
    tools:
      - {type: builtin, name: convert_currency}
      - {type: plugin, name: my_tool}          # entry point in the group "fncall.tools"
      - {type: http, name: lookup, url: "http://127.0.0.1:9000/lookup", method: GET,
         parameters: {type: object, properties: {q: {type: string}}}}
      - {type: agent, name: helper, description: ..., agent: other_agent}   # inline spec or name
    parameters: {max_steps: 6, timeout_s: 60}

A flow agent has `flow: {steps: [...], answer_prompt: ..., parameters: {...}}` instead of an LLM loop.
Invalid specs are rejected with every problem named by its field: pydantic's own checks, plus the semantic
ones (unknown builtin tool, a flow step that reads a later step, an HTTP URL whose host is not allowed).
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import jsonschema
import yaml
from jsonschema import Draft202012Validator
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from fncall.agents.agent import Agent
from fncall.agents.flow import FlowAgent, FlowRunner, FlowStep, flow_problems
from fncall.agents.http_tool import (
    LOOPBACK_HOSTS,
    HostNotAllowedError,
    HttpMethod,
    check_url_allowed,
    http_tool,
    url_placeholders,
)
from fncall.agents.react import ReactRunner
from fncall.agents.result import RunResult
from fncall.agents.runner import RunInput, Runner, RunStream
from fncall.errors import ConfigError, FncallError
from fncall.llms.base import LLM
from fncall.tools import Tool, ToolError, ToolRegistry, tool
from fncall.tools.builtin import BUILTIN_TOOLS
from fncall.tools.mcp import MCPToolConfig, mcp_tools_for_entry_sync
from fncall.types import GenerationParams, Message, ToolChoice, forced_tool_name

AgentType = Literal["function_calling", "react", "flow"]
LLMFactory = Callable[[str], LLM]
PLUGIN_GROUP = "fncall.tools"

_TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"
_TOOL_TYPES = {"builtin", "plugin", "http", "agent", "mcp"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------ the spec


class LLMParameters(_Model):
    """Generation settings passed to every request of the agent."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    constrained: bool | None = None


class LLMConfig(_Model):
    """Which backend to ask (a spec string for `fncall.llms.spec.from_spec`) and how."""

    spec: str = Field(min_length=1, description='e.g. "local:", "openai:http://127.0.0.1:8000/v1#qwen"')
    parameters: LLMParameters = Field(default_factory=LLMParameters)


class MemoryConfig(_Model):
    """How much of the conversation a run sees: none, or the last `message_history_limit` user turns."""

    type: Literal["conversation", "none"] = "conversation"
    message_history_limit: int = Field(default=10, ge=0)


class BuiltinToolConfig(_Model):
    type: Literal["builtin"]
    name: str

    @field_validator("name")
    @classmethod
    def _known_builtin(cls, value: str) -> str:
        if value not in BUILTIN_TOOLS:
            raise ValueError(f"unknown builtin tool {value!r}; builtin tools: {', '.join(BUILTIN_TOOLS)}")
        return value


class PluginToolConfig(_Model):
    """A tool installed by another package as an entry point in the group `fncall.tools`."""

    type: Literal["plugin"]
    name: str = Field(pattern=_TOOL_NAME)


class HttpToolConfig(_Model):
    """An HTTP endpoint as a tool; its host must be in `allowed_hosts` (default: loopback only)."""

    type: Literal["http"]
    name: str = Field(pattern=_TOOL_NAME)
    description: str = ""
    method: HttpMethod = "POST"
    allowed_hosts: list[str] = Field(default_factory=lambda: list(LOOPBACK_HOSTS))
    url: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _allowed_url(cls, value: str, info: ValidationInfo) -> str:
        allowed = info.data.get("allowed_hosts", list(LOOPBACK_HOSTS))
        try:
            placeholders = {field: "x" for field in url_placeholders(value)}
            check_url_allowed(value.format_map(placeholders) if placeholders else value, allowed)
        except HostNotAllowedError as error:
            raise ValueError(str(error)) from None
        except (ValueError, KeyError, IndexError) as error:
            raise ValueError(f"the URL template {value!r} cannot be filled in: {error}") from None
        return value

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as error:
            raise ValueError(f"not a valid JSON Schema: {error.message}") from None
        if value.get("type") != "object":
            raise ValueError("the parameters schema must have type 'object'")
        return value


def _agent_reference_kind(value: Any) -> str:
    return "reference" if isinstance(value, str) else "inline"


class AgentToolConfig(_Model):
    """Another agent used as a tool taking `{"input": str}`: an inline spec, or the name of one passed to
    `build_agent(..., agents=...)`."""

    type: Literal["agent"]
    name: str = Field(pattern=_TOOL_NAME)
    description: str = ""
    agent: Annotated[
        Annotated[AgentSpec, Tag("inline")] | Annotated[str, Tag("reference")],
        Discriminator(_agent_reference_kind),
    ]


ToolConfig = Annotated[
    BuiltinToolConfig | PluginToolConfig | HttpToolConfig | AgentToolConfig | MCPToolConfig,
    Field(discriminator="type"),
]


class FlowConfig(_Model):
    """A flow agent's steps, the optional answer step, and the defaults of `{{ parameters.<name> }}`."""

    steps: list[FlowStep] = Field(min_length=1)
    answer_prompt: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class AgentParameters(_Model):
    """The budgets and tool-calling settings of one run."""

    max_steps: int = Field(default=10, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    tool_timeout_s: float = Field(default=30.0, gt=0)
    loop_limit: int | None = Field(default=3, ge=2)


class AgentSpec(_Model):
    """An agent as data. Fields are validated in order, so later checks can see earlier fields: `flow`
    knows the type and the tools, `llm` knows the type and the flow, `parameters` knows the tools."""

    name: str = Field(min_length=1)
    type: AgentType = "function_calling"
    description: str = ""
    system_prompt: str = ""
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    tools: list[ToolConfig] = Field(default_factory=list)
    flow: FlowConfig | None = Field(default=None, validate_default=True)
    llm: LLMConfig | None = Field(default=None, validate_default=True)
    parameters: AgentParameters = Field(default_factory=AgentParameters)

    @field_validator("tools")
    @classmethod
    def _unique_tool_names(cls, value: list[ToolConfig]) -> list[ToolConfig]:
        seen: set[str] = set()
        for index, config in enumerate(value):
            if config.name in seen:
                raise ValueError(f"tools[{index}].name: a tool named {config.name!r} is already listed")
            seen.add(config.name)
        return value

    @field_validator("flow")
    @classmethod
    def _flow_matches_type(cls, value: FlowConfig | None, info: ValidationInfo) -> FlowConfig | None:
        agent_type = info.data.get("type")
        if agent_type == "flow" and value is None:
            raise ValueError("a flow agent needs flow.steps (the tools to call, in order)")
        if agent_type != "flow" and value is not None:
            raise ValueError(f"only flow agents have a flow; this agent's type is {agent_type!r}")
        if value is not None:
            tools = info.data.get("tools")
            names = [config.name for config in tools] if tools is not None else None
            problems = flow_problems(value.steps, names, value.answer_prompt)
            if problems:
                raise ValueError("; ".join(problems))
        return value

    @field_validator("llm")
    @classmethod
    def _llm_when_needed(cls, value: LLMConfig | None, info: ValidationInfo) -> LLMConfig | None:
        agent_type = info.data.get("type")
        flow = info.data.get("flow")
        if value is None and agent_type in ("function_calling", "react"):
            raise ValueError(f"a {agent_type} agent needs an llm (e.g. {{'spec': 'local:'}})")
        if value is None and flow is not None and flow.answer_prompt is not None:
            raise ValueError("the flow's answer_prompt needs an llm to write the answer")
        return value

    @field_validator("parameters")
    @classmethod
    def _forced_tool_is_offered(cls, value: AgentParameters, info: ValidationInfo) -> AgentParameters:
        forced = forced_tool_name(value.tool_choice)
        tools = info.data.get("tools")
        if forced is not None and tools is not None and forced not in [config.name for config in tools]:
            raise ValueError(f"tool_choice names {forced!r}, which is not one of the agent's tools")
        return value

    @classmethod
    def from_json(cls, text: str | bytes) -> AgentSpec:
        """A spec from JSON text; AgentSpecError names every problem."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise AgentSpecError([("", f"not valid JSON: {error}")]) from None
        return _validated(data)

    @classmethod
    def from_yaml(cls, text: str | bytes) -> AgentSpec:
        """A spec from YAML text; AgentSpecError names every problem."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise AgentSpecError([("", f"not valid YAML: {error}")]) from None
        return _validated(data)


class AgentSpecError(ConfigError):
    """A spec that cannot become an agent; `problems` holds (field location, message) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        lines = [f"{location}: {message}" if location else message for location, message in self.problems]
        noun = "problem" if len(lines) == 1 else "problems"
        listed = "\n".join(f"- {line}" for line in lines)
        super().__init__(f"Invalid agent spec ({len(lines)} {noun}):\n{listed}")


def load_agent_spec(source: AgentSpec | Mapping[str, Any] | str | Path) -> AgentSpec:
    """A spec from a model, a dict, JSON or YAML text, or a file (a Path; `.json`, else YAML)."""
    if isinstance(source, AgentSpec):
        return source
    if isinstance(source, Path):
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"Cannot read the agent spec file {str(source)!r}: {error}") from None
        if source.suffix.lower() == ".json":
            return AgentSpec.from_json(text)
        return AgentSpec.from_yaml(text)
    if isinstance(source, str):
        return AgentSpec.from_json(source) if source.lstrip().startswith("{") else AgentSpec.from_yaml(source)
    return _validated(source)


def _validated(data: Any) -> AgentSpec:
    if not isinstance(data, Mapping):
        raise AgentSpecError([("", f"an agent spec must be a mapping of fields, not {type(data).__name__}")])
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as error:
        raise AgentSpecError(spec_problems(error)) from None


def spec_problems(error: ValidationError) -> list[tuple[str, str]]:
    """(location, message) for each pydantic error, e.g. ("tools[0].name", "unknown builtin tool 'x' ...")."""
    return [(_location(item["loc"]), item["msg"].removeprefix("Value error, ")) for item in error.errors()]


def _location(loc: Sequence[int | str]) -> str:
    """A pydantic location as a path, without the union tags pydantic adds (`tools.0.builtin.name` reads
    `tools[0].name`)."""
    text = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not (
            (isinstance(previous, int) and part in _TOOL_TYPES)
            or (previous == "agent" and part in ("inline", "reference"))
        ):
            text += f".{part}" if text else part
        previous = part
    return text


# ---------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class BuiltAgent:
    """A spec made runnable: the agent, the runner its type needs, and its memory policy."""

    spec: AgentSpec
    agent: Agent | FlowAgent
    runner: Runner | FlowRunner

    async def run(self, input: RunInput, history: Sequence[Message] | None = None) -> RunResult:
        """Run on `input` after the part of `history` the spec's memory lets the agent see."""
        kept = trim_history(history, self.spec.memory)
        if isinstance(self.agent, FlowAgent) and isinstance(self.runner, FlowRunner):
            return await self.runner.run(self.agent, input, history=kept)
        if isinstance(self.agent, Agent) and isinstance(self.runner, Runner):
            return await self.runner.run(self.agent, input, history=kept)
        raise TypeError("a BuiltAgent pairs an Agent with a Runner or a FlowAgent with a FlowRunner")

    def stream(self, input: RunInput, history: Sequence[Message] | None = None) -> RunStream:
        """Run, yielding agent events; the stream's `result` holds the RunResult at the end."""
        kept = trim_history(history, self.spec.memory)
        if isinstance(self.agent, FlowAgent) and isinstance(self.runner, FlowRunner):
            return self.runner.stream(self.agent, input, history=kept)
        if isinstance(self.agent, Agent) and isinstance(self.runner, Runner):
            return self.runner.stream(self.agent, input, history=kept)
        raise TypeError("a BuiltAgent pairs an Agent with a Runner or a FlowAgent with a FlowRunner")


def trim_history(history: Sequence[Message] | None, memory: MemoryConfig) -> list[Message]:
    """The history a run sees: nothing for memory `none`, else from the N-th last user message on."""
    if not history or memory.type == "none" or memory.message_history_limit == 0:
        return []
    messages = list(history)
    user_positions = [i for i, message in enumerate(messages) if message.role == "user"]
    if len(user_positions) <= memory.message_history_limit:
        return messages
    start = user_positions[-memory.message_history_limit]
    return [m for m in messages[:start] if m.role == "system"] + messages[start:]


def build_agent(
    spec: AgentSpec | Mapping[str, Any] | str | Path,
    *,
    llm_factory: LLMFactory | None = None,
    agents: Mapping[str, AgentSpec | Mapping[str, Any]] | None = None,
) -> BuiltAgent:
    """Make a spec runnable. `llm_factory` turns `llm.spec` into a backend (default:
    `fncall.llms.spec.from_spec`); `agents` are the specs `{"type": "agent", "agent": "<name>"}` refers to."""
    library = {name: load_agent_spec(item) for name, item in (agents or {}).items()}
    return _build(load_agent_spec(spec), llm_factory or _default_llm_factory(), library, ())


async def run_spec(
    spec: AgentSpec | Mapping[str, Any] | str | Path,
    input: RunInput,
    history: Sequence[Message] | None = None,
    *,
    llm_factory: LLMFactory | None = None,
    agents: Mapping[str, AgentSpec | Mapping[str, Any]] | None = None,
) -> RunResult:
    """Build the agent a spec describes and run it with the runner its type needs."""
    return await build_agent(spec, llm_factory=llm_factory, agents=agents).run(input, history)


def stream_spec(
    spec: AgentSpec | Mapping[str, Any] | str | Path,
    input: RunInput,
    history: Sequence[Message] | None = None,
    *,
    llm_factory: LLMFactory | None = None,
    agents: Mapping[str, AgentSpec | Mapping[str, Any]] | None = None,
) -> RunStream:
    """Build the agent a spec describes and stream its run's events."""
    return build_agent(spec, llm_factory=llm_factory, agents=agents).stream(input, history)


def _default_llm_factory() -> LLMFactory:
    from fncall.llms.spec import from_spec  # imported late: backends pull in optional dependencies

    return from_spec


def _build(
    spec: AgentSpec, llm_factory: LLMFactory, library: Mapping[str, AgentSpec], building: tuple[str, ...]
) -> BuiltAgent:
    if spec.name in building:
        chain = " -> ".join([*building, spec.name])
        raise AgentSpecError([("tools", f"agent {spec.name!r} uses itself as a tool ({chain})")])
    llm = _make_llm(spec, llm_factory)
    inside = (*building, spec.name)
    tools = ToolRegistry()
    for index, config in enumerate(spec.tools):
        if isinstance(config, MCPToolConfig):
            try:
                for mcp_tool in mcp_tools_for_entry_sync(config):
                    tools.add(mcp_tool)
            except FncallError as error:
                raise AgentSpecError([(f"tools[{index}].server", str(error))]) from None
        else:
            tools.add(_make_tool(config, f"tools[{index}]", llm_factory, library, inside))
    settings = spec.parameters
    params = _generation_params(spec)
    if spec.type == "flow":
        assert spec.flow is not None  # the spec's validation guarantees it
        flow = FlowAgent(
            name=spec.name,
            description=spec.description,
            tools=tools,
            steps=spec.flow.steps,
            llm=llm,
            system_prompt=spec.system_prompt,
            answer_prompt=spec.flow.answer_prompt,
            parameters=spec.flow.parameters,
            params=params,
            timeout_s=settings.timeout_s,
            tool_timeout_s=settings.tool_timeout_s,
        )
        return BuiltAgent(spec=spec, agent=flow, runner=FlowRunner())
    assert llm is not None  # the spec's validation guarantees it
    agent = Agent(
        name=spec.name,
        instructions=spec.system_prompt,
        llm=llm,
        tools=tools,
        max_steps=settings.max_steps,
        max_tool_calls=settings.max_tool_calls,
        timeout_s=settings.timeout_s,
        loop_limit=settings.loop_limit,
        tool_choice=settings.tool_choice,
        parallel_tool_calls=settings.parallel_tool_calls,
        tool_timeout_s=settings.tool_timeout_s,
        params=params,
    )
    runner = ReactRunner() if spec.type == "react" else Runner()
    return BuiltAgent(spec=spec, agent=agent, runner=runner)


def _make_llm(spec: AgentSpec, llm_factory: LLMFactory) -> LLM | None:
    if spec.llm is None:
        return None
    try:
        return llm_factory(spec.llm.spec)
    except ConfigError as error:
        raise AgentSpecError([("llm.spec", str(error))]) from None


def _generation_params(spec: AgentSpec) -> GenerationParams:
    if spec.llm is None:
        return GenerationParams()
    values = spec.llm.parameters.model_dump(exclude_none=True)
    return GenerationParams(**values, parallel_tool_calls=spec.parameters.parallel_tool_calls)


def _make_tool(
    config: BuiltinToolConfig | PluginToolConfig | HttpToolConfig | AgentToolConfig,
    where: str,
    llm_factory: LLMFactory,
    library: Mapping[str, AgentSpec],
    building: tuple[str, ...],
) -> Tool:
    if isinstance(config, BuiltinToolConfig):
        return BUILTIN_TOOLS[config.name]
    if isinstance(config, PluginToolConfig):
        return load_plugin_tool(config.name, where)
    if isinstance(config, HttpToolConfig):
        try:
            return http_tool(
                config.name,
                config.url,
                description=config.description,
                method=config.method,
                parameters=config.parameters,
                headers=config.headers,
                timeout_s=config.timeout_s,
                allowed_hosts=config.allowed_hosts,
            )
        except ConfigError as error:
            raise AgentSpecError([(f"{where}.url", str(error))]) from None
    sub_spec = config.agent
    if isinstance(sub_spec, str):
        if sub_spec not in library:
            known = ", ".join(library) or "none"
            problem = f"no agent spec named {sub_spec!r} was given (known: {known})"
            raise AgentSpecError([(f"{where}.agent", problem)])
        sub_spec = library[sub_spec]
    built = _build(sub_spec, llm_factory, library, building)
    return agent_tool(config.name, config.description or sub_spec.description, built)


def agent_tool(name: str, description: str, built: BuiltAgent) -> Tool:
    """An agent as a tool taking `{"input": str}`; a run that does not answer becomes a tool error."""

    async def ask_agent(input: str) -> str:
        result = await built.run(input)
        if result.outcome != "answered":
            raise ToolError(f"The agent {built.spec.name} did not complete the task: {result.final_answer}")
        return result.final_answer

    parameters = {
        "type": "object",
        "properties": {"input": {"type": "string", "description": "What to ask the agent, in plain words."}},
        "required": ["input"],
    }
    return Tool.from_schema(name, description or f"Ask the agent {built.spec.name}.", parameters, ask_agent)


def load_plugin_tool(name: str, where: str = "tools") -> Tool:
    """The tool an installed package registers as the entry point `name` in the group `fncall.tools`:
    a Tool, or a typed function made into one. It takes the entry point's name."""
    found = importlib.metadata.entry_points(group=PLUGIN_GROUP, name=name)
    if not found:
        installed = sorted({point.name for point in importlib.metadata.entry_points(group=PLUGIN_GROUP)})
        listed = ", ".join(installed) or "none"
        problem = f"no plugin tool {name!r} is installed in the entry-point group {PLUGIN_GROUP!r} ({listed})"
        raise AgentSpecError([(f"{where}.name", problem)])
    point = next(iter(found))
    try:
        loaded = point.load()
    except Exception as error:  # a broken plugin must become a config error, not a crash elsewhere
        problem = f"the plugin {name!r} ({point.value}) failed to load: {type(error).__name__}: {error}"
        raise AgentSpecError([(f"{where}.name", problem)]) from None
    if isinstance(loaded, Tool):
        plugin = loaded
    elif callable(loaded):
        plugin = tool(loaded)
    else:
        problem = f"the plugin {name!r} ({point.value}) is neither a Tool nor a function"
        raise AgentSpecError([(f"{where}.name", problem)])
    if plugin.name == name:
        return plugin
    return Tool(
        plugin.spec.model_copy(update={"name": name}),
        plugin.fn,
        timeout_s=plugin.timeout_s,
        requires_approval=plugin.requires_approval,
        client_side=plugin.client_side,
        function_schema=plugin.function_schema,
    )


AgentToolConfig.model_rebuild()
AgentSpec.model_rebuild()

__all__ = [
    "PLUGIN_GROUP",
    "AgentParameters",
    "AgentSpec",
    "AgentSpecError",
    "AgentToolConfig",
    "AgentType",
    "BuiltAgent",
    "BuiltinToolConfig",
    "FlowConfig",
    "HttpToolConfig",
    "LLMConfig",
    "LLMFactory",
    "LLMParameters",
    "MemoryConfig",
    "PluginToolConfig",
    "ToolConfig",
    "agent_tool",
    "build_agent",
    "load_agent_spec",
    "load_plugin_tool",
    "run_spec",
    "spec_problems",
    "stream_spec",
    "trim_history",
]
