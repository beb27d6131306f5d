"""Deterministic fake tools: pure functions over small fixed tables, the same for every target.

A case offers some of them to the model; the harness runs them exactly as a client would. Inputs a tool does
not know (a city, a ticker, a date) make it fail with a reason, which the model must then report instead of
inventing a value. Lookups are case-insensitive so that "lisbon" finds Lisbon, but nothing is guessed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from jsonschema import Draft202012Validator


class FakeToolError(Exception):
    """The reason a fake tool refused its input; the model reads it as the tool's error."""


@dataclass(frozen=True)
class FakeTool:
    """A tool as a client defines it: the OpenAI function description and the function that answers it."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]

    def openai_tool(self) -> dict[str, Any]:
        """The tool in OpenAI's `tools` request shape."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass(frozen=True)
class ToolOutcome:
    """What one call returned: the text the model reads, and whether it is an error."""

    content: str
    is_error: bool = False


def run_fake_tool(name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
    """Run a fake tool as a client would: schema-check the arguments, call it, render JSON or an error."""
    tool = FAKE_TOOLS.get(name)
    if tool is None:
        return ToolOutcome(f"Error: there is no tool named {name!r}.", is_error=True)
    problems = sorted(error.message for error in Draft202012Validator(tool.parameters).iter_errors(arguments))
    unexpected = sorted(set(arguments) - set(tool.parameters.get("properties", {})))
    if unexpected:
        problems.append(f"unexpected argument(s) {', '.join(map(repr, unexpected))}")
    if problems:
        return ToolOutcome(f"Error: invalid arguments for {name}: {'; '.join(problems)}.", is_error=True)
    try:
        value = tool.function(**arguments)
    except FakeToolError as error:
        return ToolOutcome(f"Error: {error}", is_error=True)
    return ToolOutcome(json.dumps(value, ensure_ascii=False))


def openai_tools(names: list[str]) -> list[dict[str, Any]]:
    """The OpenAI `tools` list for these fake tool names, in the given order."""
    return [FAKE_TOOLS[name].openai_tool() for name in names]


# ------------------------------------------------------------------------------------------- helpers


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def _loose_key(text: str) -> str:
    """Letters and digits only, so "Dune: Part Two" and "dune part two" are one title."""
    return "".join(character for character in text.casefold() if character.isalnum())


def _lookup(table: Mapping[str, Any], key: str, what: str) -> Any:
    for name, value in table.items():
        if _key(name) == _key(key):
            return value
    raise FakeToolError(f"unknown {what} {key!r}.")


def _money(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _string(description: str) -> dict[str, str]:
    return {"type": "string", "description": description}


def _object(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


# --------------------------------------------------------------------------------------------- tables

_WEATHER = {
    "Lisbon": {"temperature_c": 21.5, "condition": "sunny", "humidity_pct": 58, "wind_kph": 14},
    "Reykjavik": {"temperature_c": 4.5, "condition": "light snow", "humidity_pct": 81, "wind_kph": 23},
    "Tokyo": {"temperature_c": 18.3, "condition": "cloudy", "humidity_pct": 64, "wind_kph": 9},
    "Nairobi": {"temperature_c": 24.1, "condition": "partly cloudy", "humidity_pct": 47, "wind_kph": 12},
    "Chicago": {"temperature_c": 11.7, "condition": "windy", "humidity_pct": 52, "wind_kph": 31},
    "Paris": {"temperature_c": 16.2, "condition": "rain", "humidity_pct": 77, "wind_kph": 18},
}

_RATES = {  # units of the second currency per one unit of the first
    ("USD", "EUR"): Decimal("0.9221"),
    ("USD", "CAD"): Decimal("1.3745"),
    ("EUR", "JPY"): Decimal("162.05"),
    ("EUR", "USD"): Decimal("1.0845"),
    ("GBP", "USD"): Decimal("1.2710"),
    ("JPY", "USD"): Decimal("0.00665"),
    ("CHF", "EUR"): Decimal("1.0632"),
}

_STOCKS = {
    "NVDA": {"price": 131.95, "currency": "USD", "change_pct": 2.41},
    "AAPL": {"price": 227.48, "currency": "USD", "change_pct": -1.32},
    "7203.T": {"price": 2650.5, "currency": "JPY", "change_pct": 0.87},
    "SAP": {"price": 198.6, "currency": "EUR", "change_pct": 0.35},
}

_ORDERS = {
    "A-10293": {"status": "shipped", "carrier": "UPS", "tracking_number": "1Z84A0771", "eta": "2025-03-09"},
    "B-55810": {"status": "in transit", "carrier": "DHL", "tracking_number": "JD01460", "eta": "2025-03-14"},
    "C-77120": {"status": "shipped", "carrier": "FedEx", "tracking_number": "7712-0045", "eta": "2025-03-11"},
}

_PACKAGES = {
    "1Z84A0771": {"status": "delivered", "location": "Porto"},
    "JD01460": {"status": "in transit", "location": "Leipzig hub"},
    "7712-0045": {"status": "in transit", "location": "Memphis, TN"},
}

_UNITS = {  # factor to the base unit of each dimension
    "km": ("length", Decimal(1000)),
    "mi": ("length", Decimal("1609.344")),
    "m": ("length", Decimal(1)),
    "ft": ("length", Decimal("0.3048")),
    "kg": ("mass", Decimal(1)),
    "lb": ("mass", Decimal("0.45359237")),
    "l": ("volume", Decimal(1)),
    "gal": ("volume", Decimal("3.785411784")),
}
_UNIT_NAMES = {
    "kilometer": "km",
    "kilometers": "km",
    "kilometre": "km",
    "kilometres": "km",
    "mile": "mi",
    "miles": "mi",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "foot": "ft",
    "feet": "ft",
    "kilogram": "kg",
    "kilograms": "kg",
    "pound": "lb",
    "pounds": "lb",
    "lbs": "lb",
    "liter": "l",
    "liters": "l",
    "litre": "l",
    "litres": "l",
    "gallon": "gal",
    "gallons": "gal",
}

_CITIES = {
    "Nairobi": {"country": "Kenya", "population": 4397073, "census_year": 2019},
    "Osaka": {"country": "Japan", "population": 2752412, "census_year": 2020},
    "Lisbon": {"country": "Portugal", "population": 545796, "census_year": 2021},
}

_COUNTRIES = {
    "Japan": {"capital": "Tokyo", "currency_code": "JPY", "population": 124516650},
    "Kenya": {"capital": "Nairobi", "currency_code": "KES", "population": 47564296},
    "Portugal": {"capital": "Lisbon", "currency_code": "EUR", "population": 10639726},
}

_LOCAL_TIMES = {
    "Sydney": {"local_time": "09:42", "utc_offset": "+11:00"},
    "Chicago": {"local_time": "07:55", "utc_offset": "-05:00"},
    "Lisbon": {"local_time": "13:55", "utc_offset": "+00:00"},
    "Tokyo": {"local_time": "21:55", "utc_offset": "+09:00"},
}

_EMPLOYEES = {
    "Priya Raman": {
        "employee_id": "E-1042",
        "department": "Data Platform",
        "office": "Berlin",
        "email": "priya.raman@example.com",
        "manager": "Daniel Okafor",
    },
    "Daniel Okafor": {
        "employee_id": "E-0317",
        "department": "Engineering",
        "office": "London",
        "email": "daniel.okafor@example.com",
        "manager": "Mei Lin",
    },
}

_NUTRITION = {  # per 100 g
    "avocado": {"calories_kcal": 160, "protein_g": 2.1, "fat_g": 14.7, "carbs_g": 8.5},
    "lentils": {"calories_kcal": 116, "protein_g": 9.0, "fat_g": 0.4, "carbs_g": 20.1},
}

_FLIGHTS = {
    ("BOS", "DEN", "2025-06-12"): [
        {"flight": "UA1423", "departs": "07:15", "arrives": "09:48", "price_usd": 189},
        {"flight": "B6271", "departs": "11:40", "arrives": "14:22", "price_usd": 154},
        {"flight": "WN902", "departs": "18:05", "arrives": "20:41", "price_usd": 132},
    ],
}
_AIRPORTS = {"Boston": "BOS", "Denver": "DEN", "Paris": "CDG", "Tokyo": "HND"}

_FLIGHT_STATUS = {
    "LH430": {"origin": "Frankfurt", "destination": "Chicago", "status": "landed", "gate": "C12"},
    "BA117": {"origin": "London", "destination": "New York", "status": "delayed", "gate": "B7"},
}

_RESTAURANTS = {
    ("Chicago", "italian"): [
        {"name": "Trattoria Nonna", "rating": 4.6},
        {"name": "Forno Rosso", "rating": 4.4},
        {"name": "Piccolo Sogno", "rating": 4.5},
        {"name": "Osteria Luca", "rating": 4.2},
    ],
}

_SHOWTIMES = {("duneparttwo", "austin"): ["13:10", "16:45", "20:30"]}

_PRODUCTS = [
    {"product_id": "P-3310", "name": "Aurora desk lamp", "price_usd": 48.0},
    {"product_id": "P-2051", "name": "Braided USB-C cable 1 m", "price_usd": 9.99},
    {"product_id": "P-2052", "name": "Braided USB-C cable 2 m", "price_usd": 12.49},
    {"product_id": "P-2077", "name": "USB-C to HDMI cable", "price_usd": 19.9},
]

_HOLIDAYS = {
    ("Ireland", 2025): [
        "New Year's Day",
        "St Brigid's Day",
        "St Patrick's Day",
        "Easter Monday",
        "May Bank Holiday",
        "June Bank Holiday",
        "August Bank Holiday",
        "October Bank Holiday",
        "Christmas Day",
        "St Stephen's Day",
    ],
}

_BOOKS = {
    "The Left Hand of Darkness": {"author": "Ursula K. Le Guin", "isbn": "9780441478125", "year": 1969},
    "A Wizard of Earthsea": {"author": "Ursula K. Le Guin", "isbn": "9780547773742", "year": 1968},
    "The Dispossessed": {"author": "Ursula K. Le Guin", "isbn": "9780061054884", "year": 1974},
    "The Lathe of Heaven": {"author": "Ursula K. Le Guin", "isbn": "9781416556961", "year": 1971},
}
_AVAILABILITY = {
    "9780441478125": {"copies_available": 2, "branch": "Central Branch"},
    "9780547773742": {"copies_available": 0, "branch": "Central Branch"},
}

_CUSTOMER_ORDERS = {
    "C-2291": [
        {"order_id": "A-10293", "status": "shipped", "total_usd": 74.5},
        {"order_id": "A-10377", "status": "processing", "total_usd": 18.0},
        {"order_id": "A-09981", "status": "delivered", "total_usd": 132.25},
    ],
}

_SUBSCRIPTIONS = {"3108": {"plan": "Pro", "renews_on": "2025-09-01"}}
_BILLING_DOWN_FOR = {"4471"}


# ------------------------------------------------------------------------------------------ functions


def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, **_lookup(_WEATHER, city, "city")}


def convert_currency(amount: float, from_currency: str, to_currency: str) -> dict[str, Any]:
    pair = (from_currency.strip().upper(), to_currency.strip().upper())
    rate = _RATES.get(pair)
    if rate is None:
        raise FakeToolError(f"no exchange rate from {from_currency!r} to {to_currency!r}: unknown currency.")
    converted = _money(Decimal(str(amount)) * rate)
    return {"amount": amount, "from": pair[0], "to": pair[1], "rate": float(rate), "converted": converted}


def get_stock_price(symbol: str) -> dict[str, Any]:
    quote = _STOCKS.get(symbol.strip().upper())
    if quote is None:
        raise FakeToolError(f"unknown ticker symbol {symbol!r}.")
    return {"symbol": symbol.strip().upper(), **quote}


def get_order_status(order_id: str) -> dict[str, Any]:
    order = _ORDERS.get(order_id.strip().upper())
    if order is None:
        raise FakeToolError(f"no order with id {order_id!r} was found.")
    return {"order_id": order_id.strip().upper(), **order}


def track_package(tracking_number: str) -> dict[str, Any]:
    package = _PACKAGES.get(tracking_number.strip().upper())
    if package is None:
        raise FakeToolError(f"unknown tracking number {tracking_number!r}.")
    return {"tracking_number": tracking_number.strip().upper(), **package}


def _unit(name: str) -> str:
    key = name.strip().casefold()
    key = _UNIT_NAMES.get(key, key)
    if key not in _UNITS:
        raise FakeToolError(f"unsupported unit {name!r}.")
    return key


def convert_units(value: float, from_unit: str, to_unit: str) -> dict[str, Any]:
    source, target = _unit(from_unit), _unit(to_unit)
    (source_dimension, source_factor), (target_dimension, target_factor) = _UNITS[source], _UNITS[target]
    if source_dimension != target_dimension:
        raise FakeToolError(f"cannot convert {source_dimension} ({source}) to {target_dimension} ({target}).")
    result = _money(Decimal(str(value)) * source_factor / target_factor)
    return {"value": value, "from_unit": source, "to_unit": target, "result": result}


def get_city_population(city: str) -> dict[str, Any]:
    return {"city": city, **_lookup(_CITIES, city, "city")}


def get_country_info(country: str) -> dict[str, Any]:
    return {"country": country, **_lookup(_COUNTRIES, country, "country")}


def get_local_time(city: str) -> dict[str, Any]:
    return {"city": city, **_lookup(_LOCAL_TIMES, city, "city")}


def lookup_employee(name: str) -> dict[str, Any]:
    return {"name": name, **_lookup(_EMPLOYEES, name, "employee")}


def get_nutrition(food: str) -> dict[str, Any]:
    return {"food": food, "per_grams": 100, **_lookup(_NUTRITION, food, "food")}


def _airport(place: str) -> str:
    code = place.strip().upper()
    if code in _AIRPORTS.values():
        return code
    return _lookup(_AIRPORTS, place, "airport or city")


def search_flights(origin: str, destination: str, date: str) -> list[dict[str, Any]]:
    try:
        day = dt.date.fromisoformat(date.strip())
    except ValueError:
        raise FakeToolError(f"invalid date {date!r}: use an existing date as YYYY-MM-DD.") from None
    return _FLIGHTS.get((_airport(origin), _airport(destination), day.isoformat()), [])


def get_flight_status(flight: str) -> dict[str, Any]:
    status = _FLIGHT_STATUS.get(flight.replace(" ", "").upper())
    if status is None:
        raise FakeToolError(f"unknown flight {flight!r}.")
    return {"flight": flight.replace(" ", "").upper(), **status}


def list_restaurants(city: str, cuisine: str) -> list[dict[str, Any]]:
    for (known_city, known_cuisine), places in _RESTAURANTS.items():
        if _key(known_city) == _key(city) and _key(known_cuisine) == _key(cuisine):
            return places
    return []


def get_showtimes(movie: str, city: str) -> dict[str, Any]:
    times = _SHOWTIMES.get((_loose_key(movie), _loose_key(city)))
    if times is None:
        raise FakeToolError(f"no showtimes for {movie!r} in {city!r}.")
    return {"movie": movie, "city": city, "showtimes": times}


def search_products(query: str) -> list[dict[str, Any]]:
    words = _key(query).replace("-", " ").split()

    def matches(product: dict[str, Any]) -> bool:
        name = _key(product["name"]).replace("-", " ")
        return all(word in name or word.rstrip("s") in name for word in words)

    return [product for product in _PRODUCTS if matches(product)]


def list_holidays(country: str, year: int) -> dict[str, Any]:
    for (known_country, known_year), names in _HOLIDAYS.items():
        if _key(known_country) == _key(country) and known_year == year:
            return {"country": known_country, "year": year, "count": len(names), "holidays": names}
    raise FakeToolError(f"no holiday calendar for {country!r} in {year}.")


def find_book(title: str) -> dict[str, Any]:
    return {"title": title, **_lookup(_BOOKS, title, "book title")}


def search_books_by_author(author: str) -> list[dict[str, Any]]:
    wanted = _key(author).replace(".", "").split()
    return [
        {"title": title, "year": book["year"]}
        for title, book in _BOOKS.items()
        if wanted and all(word in _key(book["author"]).replace(".", "").split() for word in wanted)
    ]


def check_library_availability(isbn: str) -> dict[str, Any]:
    availability = _AVAILABILITY.get(isbn.replace("-", "").strip())
    if availability is None:
        raise FakeToolError(f"the library has no record of ISBN {isbn!r}.")
    return {"isbn": isbn, **availability}


def list_customer_orders(customer_id: str) -> list[dict[str, Any]]:
    orders = _CUSTOMER_ORDERS.get(customer_id.strip().upper())
    if orders is None:
        raise FakeToolError(f"unknown customer {customer_id!r}.")
    return orders


def get_subscription(user_id: str) -> dict[str, Any]:
    if user_id.strip() in _BILLING_DOWN_FOR:
        raise FakeToolError("the billing service timed out, so the subscription could not be read.")
    return {"user_id": user_id, **_lookup(_SUBSCRIPTIONS, user_id, "user")}


# ---------------------------------------------------------------------------------------- the catalogue

_CITY = _string("City name, e.g. Paris")

FAKE_TOOLS: dict[str, FakeTool] = {
    tool.name: tool
    for tool in (
        FakeTool("get_weather", "Current weather for a city.", _object(["city"], city=_CITY), get_weather),
        FakeTool(
            "convert_currency",
            "Convert an amount of money from one currency to another at today's rate.",
            _object(
                ["amount", "from_currency", "to_currency"],
                amount={"type": "number", "description": "Amount to convert"},
                from_currency=_string("ISO 4217 code of the source currency, e.g. USD"),
                to_currency=_string("ISO 4217 code of the target currency, e.g. EUR"),
            ),
            convert_currency,
        ),
        FakeTool(
            "get_stock_price",
            "Latest share price of a stock by ticker symbol, with today's change in percent.",
            _object(["symbol"], symbol=_string("Ticker symbol, e.g. MSFT")),
            get_stock_price,
        ),
        FakeTool(
            "get_order_status",
            "Status, carrier, tracking number and estimated delivery of a shop order.",
            _object(["order_id"], order_id=_string("Order id, e.g. A-12345")),
            get_order_status,
        ),
        FakeTool(
            "track_package",
            "Where a parcel is now, by carrier tracking number.",
            _object(["tracking_number"], tracking_number=_string("Carrier tracking number")),
            track_package,
        ),
        FakeTool(
            "convert_units",
            "Convert a value between units of length, mass or volume (km, mi, m, ft, kg, lb, l, gal).",
            _object(
                ["value", "from_unit", "to_unit"],
                value={"type": "number"},
                from_unit=_string("Unit of the value, e.g. km"),
                to_unit=_string("Unit to convert to, e.g. mi"),
            ),
            convert_units,
        ),
        FakeTool(
            "get_city_population",
            "Population of a city from its latest census, with its country and the census year.",
            _object(["city"], city=_CITY),
            get_city_population,
        ),
        FakeTool(
            "get_country_info",
            "Capital, currency code and population of a country.",
            _object(["country"], country=_string("Country name, e.g. Brazil")),
            get_country_info,
        ),
        FakeTool(
            "get_local_time",
            "The current local time and UTC offset in a city.",
            _object(["city"], city=_CITY),
            get_local_time,
        ),
        FakeTool(
            "lookup_employee",
            "Company directory: an employee's id, department, office, email and manager.",
            _object(["name"], name=_string("Full name of the employee")),
            lookup_employee,
        ),
        FakeTool(
            "get_nutrition",
            "Nutrition facts per 100 g of a food: calories, protein, fat and carbohydrates.",
            _object(["food"], food=_string("Food name, e.g. banana")),
            get_nutrition,
        ),
        FakeTool(
            "search_flights",
            "Flights between two cities or airports on a date, with times and prices.",
            _object(
                ["origin", "destination", "date"],
                origin=_string("Departure city or airport code"),
                destination=_string("Arrival city or airport code"),
                date=_string("Date of travel as YYYY-MM-DD"),
            ),
            search_flights,
        ),
        FakeTool(
            "get_flight_status",
            "Status of a flight by flight number: origin, destination, status and gate.",
            _object(["flight"], flight=_string("Flight number, e.g. AF1234")),
            get_flight_status,
        ),
        FakeTool(
            "list_restaurants",
            "Restaurants of a cuisine in a city, with their ratings.",
            _object(["city", "cuisine"], city=_CITY, cuisine=_string("Cuisine, e.g. thai")),
            list_restaurants,
        ),
        FakeTool(
            "get_showtimes",
            "Today's showtimes of a movie in a city.",
            _object(["movie", "city"], movie=_string("Movie title"), city=_CITY),
            get_showtimes,
        ),
        FakeTool(
            "search_products",
            "Search the shop's catalogue; returns matching products with id, name and price in USD.",
            _object(["query"], query=_string("Words to search for")),
            search_products,
        ),
        FakeTool(
            "list_holidays",
            "Public holidays of a country in a year.",
            _object(["country", "year"], country=_string("Country name"), year={"type": "integer"}),
            list_holidays,
        ),
        FakeTool(
            "find_book",
            "Look up a book by title: author, ISBN and year.",
            _object(["title"], title=_string("Book title")),
            find_book,
        ),
        FakeTool(
            "search_books_by_author",
            "Books the library holds by an author.",
            _object(["author"], author=_string("Author name")),
            search_books_by_author,
        ),
        FakeTool(
            "check_library_availability",
            "How many copies of a book (by ISBN) the library can lend now, and at which branch.",
            _object(["isbn"], isbn=_string("13-digit ISBN")),
            check_library_availability,
        ),
        FakeTool(
            "list_customer_orders",
            "A customer's recent orders with status and total.",
            _object(["customer_id"], customer_id=_string("Customer id, e.g. C-1000")),
            list_customer_orders,
        ),
        FakeTool(
            "get_subscription",
            "A user's subscription plan and renewal date, from the billing service.",
            _object(["user_id"], user_id=_string("User id")),
            get_subscription,
        ),
    )
}
