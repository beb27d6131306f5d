"""The grounding cases: a question, the fake tools offered, the calls it needs and the values the answer must
state. Seven cases in each of six categories, in several domains.

An expected argument or answer value may be a tuple of alternatives (any one of them matches), for the
spellings a correct answer may fairly use ("UA1423" or "UA 1423", "07:55" or "7:55").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fncall.errors import ConfigError

Category = Literal[
    "single_call", "multi_fact", "tool_error", "list_result", "dependent_calls", "no_tool_fits"
]
CATEGORIES: tuple[Category, ...] = (
    "single_call",
    "multi_fact",
    "tool_error",
    "list_result",
    "dependent_calls",
    "no_tool_fits",
)

ExpectedValue = str | tuple[str, ...]

SYSTEM_PROMPT = "You are a helpful assistant."
"""The system message every target gets: neutral, so it neither pushes the model towards tools nor away."""


@dataclass(frozen=True)
class ExpectedCall:
    """A call the question needs: the tool and the argument values that must match (other arguments are
    free). A value may be a tuple of acceptable alternatives. `sample` completes the free arguments with
    values a correct client could send, so tests can replay a perfect run."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    sample: dict[str, Any] = field(default_factory=dict)

    def sample_arguments(self) -> dict[str, Any]:
        """Arguments that satisfy this: the first alternative of each pinned value, then `sample`."""
        pinned = {
            key: value[0] if isinstance(value, tuple) else value for key, value in self.arguments.items()
        }
        return {**pinned, **self.sample}


@dataclass(frozen=True)
class GroundingCase:
    """One question of the evaluation. `expected_calls` are in the order they must happen."""

    id: str
    category: Category
    question: str
    tools: tuple[str, ...]
    expected_calls: tuple[ExpectedCall, ...] = ()
    expected_values: tuple[ExpectedValue, ...] = ()


def _case(
    case_id: str,
    category: Category,
    question: str,
    tools: list[str],
    calls: list[ExpectedCall] | None = None,
    values: list[ExpectedValue] | None = None,
) -> GroundingCase:
    return GroundingCase(case_id, category, question, tuple(tools), tuple(calls or ()), tuple(values or ()))


_C = ExpectedCall
_KM = ("km", "kilometers", "kilometres", "kilometer", "kilometre")

_SINGLE_CALL = [
    _case(
        "weather_lisbon",
        "single_call",
        "What's the temperature in Lisbon right now?",
        ["get_weather", "convert_currency", "get_stock_price", "get_local_time"],
        [_C("get_weather", {"city": "Lisbon"})],
        ["21.5"],
    ),
    _case(
        "eur_to_jpy",
        "single_call",
        "How much is 250 euros in Japanese yen?",
        ["convert_currency", "get_weather", "convert_units"],
        [_C("convert_currency", {"amount": 250, "from_currency": "EUR", "to_currency": "JPY"})],
        ["40512.5"],
    ),
    _case(
        "nvda_price",
        "single_call",
        "What is Nvidia's share price? The ticker is NVDA.",
        ["get_stock_price", "get_country_info", "convert_currency", "search_products"],
        [_C("get_stock_price", {"symbol": "NVDA"})],
        ["131.95"],
    ),
    _case(
        "marathon_km",
        "single_call",
        "Convert 26.2 miles to kilometers.",
        ["convert_units", "convert_currency", "get_weather"],
        [_C("convert_units", {"value": 26.2, "from_unit": ("mi", "miles", "mile"), "to_unit": _KM})],
        ["42.16"],
    ),
    _case(
        "order_a10293",
        "single_call",
        "What is the status of my order A-10293?",
        ["get_order_status", "track_package", "list_customer_orders", "search_products"],
        [_C("get_order_status", {"order_id": "A-10293"})],
        ["shipped"],
    ),
    _case(
        "nairobi_population",
        "single_call",
        "How many people live in Nairobi?",
        ["get_city_population", "get_country_info", "get_weather", "get_local_time", "list_holidays"],
        [_C("get_city_population", {"city": "Nairobi"})],
        ["4397073"],
    ),
    _case(
        "sydney_time",
        "single_call",
        "What time is it in Sydney?",
        ["get_local_time", "get_weather", "search_flights"],
        [_C("get_local_time", {"city": "Sydney"})],
        [("09:42", "9:42")],
    ),
]

_MULTI_FACT = [
    _case(
        "reykjavik_report",
        "multi_fact",
        "Give me the full weather report for Reykjavik: temperature, conditions, humidity and wind speed.",
        ["get_weather", "get_local_time", "get_city_population", "convert_units"],
        [_C("get_weather", {"city": "Reykjavik"})],
        ["4.5", "snow", "81", "23"],
    ),
    _case(
        "avocado_nutrition",
        "multi_fact",
        "What are the calories, protein, fat and carbs in 100 g of avocado?",
        ["get_nutrition", "search_products", "list_restaurants"],
        [_C("get_nutrition", {"food": ("avocado", "avocados")})],
        ["160", "2.1", "14.7", "8.5"],
    ),
    _case(
        "order_b55810_details",
        "multi_fact",
        "For order B-55810, tell me its status, the carrier and the estimated delivery date.",
        ["get_order_status", "track_package", "list_customer_orders"],
        [_C("get_order_status", {"order_id": "B-55810"})],
        [
            "in transit",
            "DHL",
            ("2025-03-14", "March 14", "14 March", "Mar 14", "14 Mar", "14/03/2025", "03/14/2025", "14th"),
        ],
    ),
    _case(
        "employee_priya",
        "multi_fact",
        "Look up Priya Raman in the directory: which department is she in, which office, and her email?",
        ["lookup_employee", "get_local_time", "get_subscription", "list_customer_orders"],
        [_C("lookup_employee", {"name": "Priya Raman"})],
        ["Data Platform", "Berlin", "priya.raman@example.com"],
    ),
    _case(
        "aapl_quote",
        "multi_fact",
        "What is Apple's (AAPL) share price and how much has it changed today in percent?",
        ["get_stock_price", "convert_currency", "get_country_info", "search_products", "get_weather"],
        [_C("get_stock_price", {"symbol": "AAPL"})],
        ["227.48", "1.32"],
    ),
    _case(
        "osaka_census",
        "multi_fact",
        "What is the population of Osaka, which country is it in, and in which census year was it counted?",
        ["get_city_population", "get_country_info", "get_weather"],
        [_C("get_city_population", {"city": "Osaka"})],
        ["2752412", "Japan", "2020"],
    ),
    _case(
        "kenya_facts",
        "multi_fact",
        "What are the capital, the currency code and the population of Kenya?",
        ["get_country_info", "get_city_population", "convert_currency", "get_local_time"],
        [_C("get_country_info", {"country": "Kenya"})],
        ["Nairobi", "KES", "47564296"],
    ),
]

_FAILURE_TIMEOUT = ("timed out", "time out", "timeout", "unavailable", "not respond", "didn't respond")
_FAILURE_INVALID = ("invalid", "not a valid", "isn't a valid", "does not exist", "doesn't exist", "no such")

_TOOL_ERROR = [
    _case(
        "weather_atlantis",
        "tool_error",
        "What's the weather like in Atlantis today?",
        ["get_weather", "get_local_time", "get_city_population"],
        [_C("get_weather", {"city": "Atlantis"})],
    ),
    _case(
        "unknown_ticker",
        "tool_error",
        "What is the current share price of the ticker ZZZQ?",
        ["get_stock_price", "convert_currency", "search_products", "get_country_info"],
        [_C("get_stock_price", {"symbol": "ZZZQ"})],
    ),
    _case(
        "missing_order",
        "tool_error",
        "Where is my order X-00000?",
        ["get_order_status", "track_package", "list_customer_orders"],
        [_C("get_order_status", {"order_id": "X-00000"})],
    ),
    _case(
        "klingon_currency",
        "tool_error",
        "Convert 100 Klingon darseks to US dollars.",
        ["convert_currency", "convert_units", "get_stock_price"],
        [_C("convert_currency", {"amount": 100, "to_currency": "USD"}, {"from_currency": "KLD"})],
    ),
    _case(
        "parsec_units",
        "tool_error",
        "Use the unit converter: how many kilometers are 5 parsecs?",
        ["convert_units", "convert_currency", "get_weather", "get_city_population"],
        [_C("convert_units", {"value": 5, "to_unit": _KM}, {"from_unit": "parsec"})],
    ),
    _case(
        "impossible_date",
        "tool_error",
        "Find flights from Paris to Tokyo on 2025-02-30.",
        ["search_flights", "get_flight_status", "get_local_time", "get_weather"],
        [
            _C(
                "search_flights",
                {"origin": ("Paris", "CDG"), "destination": ("Tokyo", "HND", "NRT"), "date": "2025-02-30"},
            )
        ],
        [_FAILURE_INVALID],
    ),
    _case(
        "billing_timeout",
        "tool_error",
        "Which subscription plan does user 4471 have?",
        ["get_subscription", "lookup_employee", "list_customer_orders"],
        [_C("get_subscription", {"user_id": "4471"})],
        [_FAILURE_TIMEOUT],
    ),
]

_LIST_RESULT = [
    _case(
        "flights_bos_den",
        "list_result",
        "Which flights go from Boston to Denver on 2025-06-12?",
        ["search_flights", "get_flight_status", "get_weather", "convert_currency"],
        [
            _C(
                "search_flights",
                {"origin": ("Boston", "BOS"), "destination": ("Denver", "DEN"), "date": "2025-06-12"},
            )
        ],
        [("UA1423", "UA 1423"), ("B6271", "B6 271"), ("WN902", "WN 902")],
    ),
    _case(
        "italian_chicago",
        "list_result",
        "List the Italian restaurants in Chicago.",
        ["list_restaurants", "get_weather", "get_local_time", "get_nutrition"],
        [_C("list_restaurants", {"city": "Chicago", "cuisine": "Italian"})],
        ["Trattoria Nonna", "Forno Rosso", "Piccolo Sogno", "Osteria Luca"],
    ),
    _case(
        "dune_showtimes",
        "list_result",
        "What are today's showtimes for Dune: Part Two in Austin?",
        ["get_showtimes", "list_restaurants", "get_local_time"],
        [
            _C(
                "get_showtimes",
                {"movie": ("Dune: Part Two", "Dune Part Two", "Dune: Part 2", "Dune"), "city": "Austin"},
            )
        ],
        [("13:10", "1:10"), ("16:45", "4:45"), ("20:30", "8:30")],
    ),
    _case(
        "usb_c_cables",
        "list_result",
        "Which USB-C cables does the shop sell, and at what prices?",
        ["search_products", "get_order_status", "convert_currency"],
        [_C("search_products", sample={"query": "USB-C cable"})],
        ["9.99", "12.49", "19.9"],
    ),
    _case(
        "irish_holidays",
        "list_result",
        "What are the public holidays in Ireland in 2025?",
        ["list_holidays", "get_country_info", "get_local_time", "get_weather"],
        [_C("list_holidays", {"country": "Ireland", "year": 2025})],
        ["10", "New Year", "Brigid", "Patrick"],
    ),
    _case(
        "le_guin_books",
        "list_result",
        "Which books by Ursula K. Le Guin does the library hold?",
        ["search_books_by_author", "find_book", "check_library_availability", "search_products"],
        [
            _C(
                "search_books_by_author",
                {"author": ("Ursula K. Le Guin", "Ursula K Le Guin", "Ursula Le Guin")},
            )
        ],
        ["Left Hand of Darkness", "Wizard of Earthsea", "Dispossessed", "Lathe of Heaven"],
    ),
    _case(
        "customer_orders",
        "list_result",
        "Show me the recent orders of customer C-2291.",
        ["list_customer_orders", "get_order_status", "track_package", "lookup_employee"],
        [_C("list_customer_orders", {"customer_id": "C-2291"})],
        ["A-10293", "A-10377", "A-09981"],
    ),
]

_DEPENDENT_CALLS = [
    _case(
        "weather_capital_japan",
        "dependent_calls",
        "What's the weather in the capital of Japan? Look up the capital first.",
        ["get_country_info", "get_weather", "get_city_population", "get_local_time"],
        [_C("get_country_info", {"country": "Japan"}), _C("get_weather", {"city": "Tokyo"})],
        ["Tokyo", "18.3"],
    ),
    _case(
        "package_of_order",
        "dependent_calls",
        "Where is the parcel of order C-77120 right now?",
        ["get_order_status", "track_package", "list_customer_orders"],
        [
            _C("get_order_status", {"order_id": "C-77120"}),
            _C("track_package", {"tracking_number": "7712-0045"}),
        ],
        ["Memphis"],
    ),
    _case(
        "book_availability",
        "dependent_calls",
        "Can I borrow 'The Left Hand of Darkness' from the library now? How many copies are available?",
        ["find_book", "check_library_availability", "search_books_by_author", "search_products"],
        [
            _C("find_book", {"title": "The Left Hand of Darkness"}),
            _C("check_library_availability", {"isbn": "9780441478125"}),
        ],
        ["2", "Central"],
    ),
    _case(
        "manager_email",
        "dependent_calls",
        "What is the email address of Priya Raman's manager?",
        ["lookup_employee", "get_subscription", "get_local_time"],
        [_C("lookup_employee", {"name": "Priya Raman"}), _C("lookup_employee", {"name": "Daniel Okafor"})],
        ["daniel.okafor@example.com"],
    ),
    _case(
        "lamp_in_euros",
        "dependent_calls",
        "How much does the Aurora desk lamp cost in euros?",
        ["search_products", "convert_currency", "get_order_status", "convert_units"],
        [
            _C("search_products", sample={"query": "Aurora desk lamp"}),
            _C("convert_currency", {"amount": 48, "from_currency": "USD", "to_currency": "EUR"}),
        ],
        ["44.26"],
    ),
    _case(
        "time_at_destination",
        "dependent_calls",
        "What is the local time now in the city where flight LH430 lands?",
        ["get_flight_status", "get_local_time", "search_flights", "get_weather"],
        [_C("get_flight_status", {"flight": "LH430"}), _C("get_local_time", {"city": "Chicago"})],
        ["Chicago", ("07:55", "7:55")],
    ),
    _case(
        "toyota_in_usd",
        "dependent_calls",
        "What does one Toyota share (ticker 7203.T) cost in US dollars?",
        ["get_stock_price", "convert_currency", "get_country_info", "convert_units"],
        [
            _C("get_stock_price", {"symbol": "7203.T"}),
            _C("convert_currency", {"amount": 2650.5, "from_currency": "JPY", "to_currency": "USD"}),
        ],
        ["17.63"],
    ),
]

_NO_TOOL_FITS = [
    _case(
        "say_hello",
        "no_tool_fits",
        "Say hello in one short sentence.",
        [
            "convert_currency",
            "get_weather",
            "get_stock_price",
            "search_flights",
            "get_local_time",
            "get_order_status",
        ],
    ),
    _case(
        "capital_of_france",
        "no_tool_fits",
        "What is the capital of France?",
        ["get_weather", "get_stock_price", "get_order_status"],
    ),
    _case(
        "autumn_haiku",
        "no_tool_fits",
        "Write a haiku about autumn leaves.",
        ["get_nutrition", "list_restaurants", "get_showtimes"],
    ),
    _case(
        "square_root",
        "no_tool_fits",
        "What is the square root of 144?",
        ["convert_units", "convert_currency", "get_city_population"],
    ),
    _case(
        "translate_greeting",
        "no_tool_fits",
        "How do you say 'good morning' in Spanish?",
        ["get_weather", "convert_currency", "search_flights", "get_local_time"],
    ),
    _case(
        "weather_without_weather_tool",
        "no_tool_fits",
        "Will it rain in Paris tomorrow?",
        ["get_stock_price", "convert_currency", "search_products"],
    ),
    _case(
        "thanks",
        "no_tool_fits",
        "Thanks a lot, that was all I needed!",
        ["get_order_status", "track_package", "list_customer_orders", "lookup_employee"],
    ),
]

CASES: tuple[GroundingCase, ...] = (
    *_SINGLE_CALL,
    *_MULTI_FACT,
    *_TOOL_ERROR,
    *_LIST_RESULT,
    *_DEPENDENT_CALLS,
    *_NO_TOOL_FITS,
)


def select_cases(
    categories: list[str] | None = None, limit_per_category: int | None = None
) -> list[GroundingCase]:
    """The cases of the given categories (all when None), the first `limit_per_category` of each."""
    unknown = sorted(set(categories or ()) - set(CATEGORIES))
    if unknown:
        raise ConfigError(f"Unknown categories {', '.join(unknown)}; choose among {', '.join(CATEGORIES)}.")
    chosen: list[GroundingCase] = []
    for category in CATEGORIES:
        if categories and category not in categories:
            continue
        in_category = [case for case in CASES if case.category == category]
        chosen.extend(in_category[:limit_per_category] if limit_per_category else in_category)
    return chosen
