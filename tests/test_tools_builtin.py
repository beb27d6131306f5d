"""The seed systems' built-in tools: currency conversion and offline (optionally live) stock data."""

import json
import sys
import types
from importlib import resources
from typing import Any

import pytest

from fncall.tools import ToolExecutor, UnknownToolError
from fncall.tools.builtin import (
    BUILTIN_TOOLS,
    LIVE_STOCKS_ENV,
    builtin_registry,
    convert_currency,
    get_company_news,
    get_current_stock_price,
)
from fncall.types import ToolCall, ToolSpec

_SAMPLE = json.loads(
    resources.files("fncall.tools").joinpath("data", "stocks.json").read_text(encoding="utf-8")
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may reach the network: live stock data is off unless a test turns it on."""
    monkeypatch.delenv(LIVE_STOCKS_ENV, raising=False)


async def _run(name: str, **arguments: Any) -> Any:
    return await ToolExecutor(builtin_registry()).run_call(ToolCall(name=name, arguments=arguments))


# ------------------------------------------------------------------------------------------ currency


def test_convert_currency_spec_matches_the_seed() -> None:
    assert convert_currency.spec == ToolSpec(
        name="convert_currency",
        description="Convert from one currency to another. Result is returned in the 'converted_amount' key.",
        parameters={
            "type": "object",
            "properties": {
                "from_currency": {
                    "type": "string",
                    "description": "The source currency to convert from, e.g. USD",
                },
                "to_currency": {
                    "type": "string",
                    "description": "The target currency to convert to, e.g. CAD",
                },
                "amount": {"type": "number", "description": "The amount to be converted"},
            },
            "required": ["from_currency", "to_currency", "amount"],
            "additionalProperties": False,
        },
    )


async def test_42_usd_is_131_95_cad() -> None:
    result = await _run("convert_currency", from_currency="USD", to_currency="CAD", amount=42)
    assert not result.is_error
    assert result.data == {"from_currency": "USD", "to_currency": "CAD", "converted_amount": 131.95}
    assert result.content == '{"from_currency":"USD","to_currency":"CAD","converted_amount":131.95}'


def test_codes_are_case_insensitive_and_pairs_go_through_usd() -> None:
    assert convert_currency(" usd", "cad", 42) == {
        "from_currency": "USD",
        "to_currency": "CAD",
        "converted_amount": 131.95,
    }
    assert convert_currency("CAD", "USD", 3.14159)["converted_amount"] == 1.0
    assert convert_currency("EUR", "GBP", 92)["converted_amount"] == 79.0
    assert convert_currency("JPY", "JPY", 1234.567)["converted_amount"] == 1234.57


async def test_unknown_currency_code_names_it_and_the_supported_ones() -> None:
    result = await _run("convert_currency", from_currency="USD", to_currency="XYZ", amount=1)
    assert result.is_error
    assert result.content == (
        "Error: convert_currency raised ValueError: Unknown currency code 'XYZ'. "
        "Supported codes: AUD, CAD, CHF, EUR, GBP, JPY, USD."
    )


async def test_missing_amount_is_a_schema_error() -> None:
    result = await _run("convert_currency", from_currency="USD", to_currency="CAD")
    assert result.is_error
    assert result.data == {"error_kind": "invalid_arguments"}
    assert "- 'amount' is a required property" in result.content


# -------------------------------------------------------------------------------------------- stocks


def test_sample_data_is_marked_and_complete() -> None:
    assert "not market data" in _SAMPLE["note"]
    assert _SAMPLE["as_of"] == "2025-01-15"
    assert {"RIVN", "AAPL", "NVDA", "MSFT", "TSLA"} <= set(_SAMPLE["stocks"])
    for stock in _SAMPLE["stocks"].values():
        assert 3 <= len(stock["headlines"]) <= 5
        assert stock["price"] > 0
        assert stock["currency"] == "USD"


async def test_stock_price_from_offline_data_case_insensitive() -> None:
    result = await _run("get_current_stock_price", symbol="rivn")
    assert not result.is_error
    assert result.data == {
        "symbol": "RIVN",
        "price": _SAMPLE["stocks"]["RIVN"]["price"],
        "currency": "USD",
        "as_of": "2025-01-15",
        "source": "offline",
    }


async def test_company_news_from_offline_data() -> None:
    result = await _run("get_company_news", symbol="NVDA")
    assert result.data == {
        "symbol": "NVDA",
        "company": "NVIDIA Corporation",
        "headlines": _SAMPLE["stocks"]["NVDA"]["headlines"],
        "as_of": "2025-01-15",
        "source": "offline",
    }


@pytest.mark.parametrize("name", ["get_current_stock_price", "get_company_news"])
async def test_unknown_symbol_lists_known_ones(name: str) -> None:
    result = await _run(name, symbol="zzzz")
    assert result.is_error
    assert result.content == (
        f"Error: {name} raised ValueError: Unknown stock symbol 'ZZZZ'. "
        "Known symbols in the offline data: AAPL, MSFT, NVDA, RIVN, TSLA."
    )


def _fake_yfinance(
    monkeypatch: pytest.MonkeyPatch, info: dict | None = None, news: list | None = None
) -> list[str]:
    """Install a stand-in `yfinance` module; returns the tickers it was asked about."""
    asked: list[str] = []

    class Ticker:
        def __init__(self, symbol: str) -> None:
            asked.append(symbol)
            if info is None:
                raise ConnectionError("network unreachable")
            self.info = info
            self.news = news

    module = types.ModuleType("yfinance")
    module.Ticker = Ticker  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "yfinance", module)
    return asked


def test_live_provider_is_never_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_yfinance(monkeypatch, info={"regularMarketPrice": 1.0})
    assert get_current_stock_price("AAPL")["source"] == "offline"
    assert get_company_news("AAPL")["source"] == "offline"
    assert asked == []


def test_live_provider_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIVE_STOCKS_ENV, "1")
    news = [{"title": "Old shape"}, {"content": {"title": "New shape"}}, {"content": {}}]
    asked = _fake_yfinance(monkeypatch, info={"currentPrice": 12.5, "currency": "USD"}, news=news)
    assert get_current_stock_price("rivn") == {
        "symbol": "RIVN",
        "price": 12.5,
        "currency": "USD",
        "source": "yfinance",
    }
    assert get_company_news("RIVN") == {
        "symbol": "RIVN",
        "headlines": ["Old shape", "New shape"],
        "source": "yfinance",
    }
    assert asked == ["RIVN", "RIVN"]


def test_live_failure_falls_back_to_offline_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIVE_STOCKS_ENV, "1")
    _fake_yfinance(monkeypatch, info=None)
    result = get_current_stock_price("TSLA")
    assert result["source"] == "offline"
    assert result["price"] == _SAMPLE["stocks"]["TSLA"]["price"]
    assert result["note"] == (
        "live lookup failed (ConnectionError: network unreachable); showing offline sample data instead."
    )


# ------------------------------------------------------------------------------------------ registry


def test_builtin_registry_and_subset() -> None:
    assert list(BUILTIN_TOOLS) == ["convert_currency", "get_current_stock_price", "get_company_news"]
    assert builtin_registry().names() == list(BUILTIN_TOOLS)
    assert builtin_registry(["get_company_news"]).names() == ["get_company_news"]
    with pytest.raises(UnknownToolError, match="'stock_price'"):
        builtin_registry(["stock_price"])
