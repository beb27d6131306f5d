"""Ready agents from the seed systems: BentoML's Exchange Assistant, the Triton tutorial's stock assistant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fncall.agents.agent import Agent
from fncall.errors import ConfigError
from fncall.llms.base import LLM
from fncall.tools.builtin import builtin_registry

# Verbatim from the BentoML example, including the double space before "the 'from_currency'".
EXCHANGE_SYSTEM_PROMPT = (
    "You are a helpful assistant that can access external functions. "
    "The responses from these function calls will be appended to this dialogue. "
    "Please provide responses only based on the results from these function calls. "
    "The results will be specified in the 'converted_amount' field. "
    "The source and target currencies will be specified in  the 'from_currency' and 'to_currency' "
    "respectively."
)

EXCHANGE_DEFAULT_QUERY = "I want to exchange 42 US dollars to Canadian dollars"

STOCK_SYSTEM_PROMPT = (
    "You are a helpful assistant for questions about listed companies. Use the get_current_stock_price and "
    "get_company_news functions to look facts up, and answer only from what they return. If a function "
    "returns an error or nothing, say so instead of guessing."
)


def exchange_assistant(llm: LLM, **settings: Any) -> Agent:
    """The seed's Exchange Assistant: the seed's system prompt and the convert_currency tool.

    `settings` are Agent fields (max_steps, timeout_s, ...) to override.
    """
    return Agent(
        name="exchange-assistant",
        instructions=EXCHANGE_SYSTEM_PROMPT,
        llm=llm,
        tools=builtin_registry(["convert_currency"]),
        **settings,
    )


def stock_assistant(llm: LLM, **settings: Any) -> Agent:
    """The Triton tutorial's assistant: current stock price and company news for a ticker symbol."""
    return Agent(
        name="stock-assistant",
        instructions=STOCK_SYSTEM_PROMPT,
        llm=llm,
        tools=builtin_registry(["get_current_stock_price", "get_company_news"]),
        **settings,
    )


GENERAL_SYSTEM_PROMPT = (
    "You are a helpful assistant. Use the available functions when the question needs them, and answer from "
    "what they return. If no function fits, answer directly."
)


def general_assistant(llm: LLM, **settings: Any) -> Agent:
    """An assistant offered every built-in tool."""
    return Agent(
        name="assistant",
        instructions=GENERAL_SYSTEM_PROMPT,
        llm=llm,
        tools=builtin_registry(),
        **settings,
    )


ASSISTANTS: dict[str, Callable[..., Agent]] = {
    "exchange": exchange_assistant,
    "stock": stock_assistant,
    "all": general_assistant,
}


def assistant_for(name: str, llm: LLM, **settings: Any) -> Agent:
    """A ready agent by name (`exchange`, `stock`, `all`), for the CLI and the service."""
    try:
        factory = ASSISTANTS[name]
    except KeyError:
        raise ConfigError(f"unknown assistant {name!r}; choose one of {', '.join(ASSISTANTS)}") from None
    return factory(llm, **settings)
