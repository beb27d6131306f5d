"""The seed systems' example tools: currency conversion (BentoML) and stock price / company news (Triton).

They run offline by default: fictitious exchange rates and a bundled sample data set, so demos, tests and
benchmarks give the same answer everywhere. Stock data can come live from `yfinance` when it is installed
and `FNCALL_STOCKS_LIVE=1` is set.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterable
from importlib import resources
from typing import Annotated, Any

from pydantic import Field

from fncall.tools.function_tool import Tool, tool
from fncall.tools.registry import ToolRegistry

# Fictitious units of each currency per US dollar. USD -> CAD is the seed's 3.14159, so 42 USD is 131.95 CAD;
# every other pair goes through USD, so the table is consistent in both directions.
UNITS_PER_USD: dict[str, float] = {
    "USD": 1.0,
    "CAD": 3.14159,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 151.0,
    "CHF": 0.88,
    "AUD": 1.52,
}

LIVE_STOCKS_ENV = "FNCALL_STOCKS_LIVE"


@tool(description="Convert from one currency to another. Result is returned in the 'converted_amount' key.")
def convert_currency(
    from_currency: Annotated[str, Field(description="The source currency to convert from, e.g. USD")],
    to_currency: Annotated[str, Field(description="The target currency to convert to, e.g. CAD")],
    amount: Annotated[float, Field(description="The amount to be converted")],
) -> dict[str, Any]:
    """Convert an amount with a fixed, fictitious rate table (codes are case-insensitive)."""
    source = _currency_code(from_currency)
    target = _currency_code(to_currency)
    converted = amount / UNITS_PER_USD[source] * UNITS_PER_USD[target]
    return {"from_currency": source, "to_currency": target, "converted_amount": round(converted, 2)}


@tool
def get_current_stock_price(symbol: str) -> dict[str, Any]:
    """Get the current stock price for a given symbol.

    Args:
        symbol: The stock symbol (ticker), e.g. AAPL.
    """
    ticker = _ticker(symbol)
    fallback_reason = None
    if _live_stocks_enabled():
        try:
            return _live_price(ticker)
        except Exception as error:  # any provider failure falls back to the offline sample
            fallback_reason = f"live lookup failed ({type(error).__name__}: {error})"
    stock = _offline_stock(ticker)
    result = {
        "symbol": ticker,
        "price": stock["price"],
        "currency": stock["currency"],
        "as_of": _stock_data()["as_of"],
        "source": "offline",
    }
    return _with_note(result, fallback_reason)


@tool
def get_company_news(symbol: str) -> dict[str, Any]:
    """Get the latest news headlines for a company, given its stock symbol.

    Args:
        symbol: The stock symbol (ticker) of the company, e.g. RIVN.
    """
    ticker = _ticker(symbol)
    fallback_reason = None
    if _live_stocks_enabled():
        try:
            return _live_news(ticker)
        except Exception as error:  # any provider failure falls back to the offline sample
            fallback_reason = f"live lookup failed ({type(error).__name__}: {error})"
    stock = _offline_stock(ticker)
    result = {
        "symbol": ticker,
        "company": stock["company"],
        "headlines": list(stock["headlines"]),
        "as_of": _stock_data()["as_of"],
        "source": "offline",
    }
    return _with_note(result, fallback_reason)


BUILTIN_TOOLS: dict[str, Tool] = {
    builtin.name: builtin for builtin in (convert_currency, get_current_stock_price, get_company_news)
}


def builtin_registry(names: Iterable[str] | None = None) -> ToolRegistry:
    """A registry of the built-in tools, or of the named ones (unknown names raise UnknownToolError)."""
    registry = ToolRegistry(BUILTIN_TOOLS.values())
    return registry if names is None else registry.subset(names)


# ------------------------------------------------------------------------------------------ currency


def _currency_code(code: str) -> str:
    normalized = code.strip().upper()
    if normalized not in UNITS_PER_USD:
        supported = ", ".join(sorted(UNITS_PER_USD))
        raise ValueError(f"Unknown currency code {code!r}. Supported codes: {supported}.")
    return normalized


# -------------------------------------------------------------------------------------------- stocks


@functools.cache
def _stock_data() -> dict[str, Any]:
    text = resources.files("fncall.tools").joinpath("data", "stocks.json").read_text(encoding="utf-8")
    return json.loads(text)


def _ticker(symbol: str) -> str:
    return symbol.strip().upper()


def _offline_stock(ticker: str) -> dict[str, Any]:
    stocks = _stock_data()["stocks"]
    if ticker not in stocks:
        known = ", ".join(sorted(stocks))
        raise ValueError(f"Unknown stock symbol {ticker!r}. Known symbols in the offline data: {known}.")
    return stocks[ticker]


def _with_note(result: dict[str, Any], fallback_reason: str | None) -> dict[str, Any]:
    """Say why offline data answers when live data was asked for."""
    if fallback_reason:
        result["note"] = f"{fallback_reason}; showing offline sample data instead."
    return result


def _live_stocks_enabled() -> bool:
    """Live data only on explicit request, and only when yfinance is installed: never by default."""
    if os.environ.get(LIVE_STOCKS_ENV) != "1":
        return False
    return "yfinance" in sys.modules or importlib.util.find_spec("yfinance") is not None


def _live_price(ticker: str) -> dict[str, Any]:
    yfinance: Any = importlib.import_module("yfinance")
    info = yfinance.Ticker(ticker).info or {}
    price = info.get("regularMarketPrice", info.get("currentPrice"))
    if price is None:
        raise LookupError(f"no price for {ticker}")
    return {"symbol": ticker, "price": price, "currency": info.get("currency", "USD"), "source": "yfinance"}


def _live_news(ticker: str) -> dict[str, Any]:
    yfinance: Any = importlib.import_module("yfinance")
    items = yfinance.Ticker(ticker).news or []
    headlines = [title for item in items if (title := _news_title(item))]
    if not headlines:
        raise LookupError(f"no news for {ticker}")
    return {"symbol": ticker, "headlines": headlines, "source": "yfinance"}


def _news_title(item: Any) -> str | None:
    """yfinance has put the title at the top level and, in newer versions, under `content`."""
    if not isinstance(item, dict):
        return None
    content = item.get("content")
    title = item.get("title") or (content.get("title") if isinstance(content, dict) else None)
    return title if isinstance(title, str) and title else None
