"""BFCL's single-turn test cases, loaded through bfcl-eval and sampled reproducibly."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from fncall.errors import ConfigError
from fncall.evals.bfcl.package import bfcl_package

AST_CATEGORIES = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
)
IRRELEVANCE_CATEGORIES = ("irrelevance", "live_irrelevance")
RELEVANCE_CATEGORIES = ("live_relevance",)
SINGLE_TURN_CATEGORIES = (*AST_CATEGORIES, *IRRELEVANCE_CATEGORIES, *RELEVANCE_CATEGORIES)
DEFAULT_CATEGORIES = SINGLE_TURN_CATEGORIES

Expectation = Literal["calls", "no_call", "any_call"]


@dataclass(frozen=True)
class BfclCase:
    """One BFCL test case: the conversation, the function docs offered, and what counts as right.

    `ground_truth` is BFCL's possible-answer list (one `{name: {param: [allowed values]}}` per expected call)
    for AST categories, None for (ir)relevance ones.
    """

    id: str
    category: str
    messages: list[dict[str, Any]]
    functions: list[dict[str, Any]]
    ground_truth: list[dict[str, Any]] | None = None

    @property
    def expectation(self) -> Expectation:
        return expectation_of(self.category)


def expectation_of(category: str) -> Expectation:
    """What a category asks of the model: the right calls, no call at all, or any call."""
    if category in IRRELEVANCE_CATEGORIES:
        return "no_call"
    if category in RELEVANCE_CATEGORIES:
        return "any_call"
    return "calls"


def check_categories(categories: list[str]) -> list[str]:
    """The categories, validated against the single-turn ones fncall runs (duplicates dropped)."""
    unknown = [name for name in categories if name not in SINGLE_TURN_CATEGORIES]
    if unknown:
        raise ConfigError(
            f"Unknown BFCL categories: {', '.join(unknown)}. "
            f"The single-turn categories are: {', '.join(SINGLE_TURN_CATEGORIES)}."
        )
    return list(dict.fromkeys(categories))


def load_cases(category: str) -> list[BfclCase]:
    """Every case of a single-turn category, in BFCL's order, with its ground truth when it has one."""
    (category,) = check_categories([category])
    package = bfcl_package()
    entries = package.load_dataset_entry(category)
    answers: dict[str, list[dict[str, Any]]] = {}
    if expectation_of(category) == "calls":
        answers = {row["id"]: row["ground_truth"] for row in package.load_ground_truth_entry(category)}
    cases = []
    for entry in entries:
        turns = entry["question"]
        if len(turns) != 1:
            raise ConfigError(f"BFCL case {entry['id']} has {len(turns)} turns; expected a single turn.")
        cases.append(
            BfclCase(
                id=entry["id"],
                category=category,
                messages=list(turns[0]),
                functions=list(entry["function"]),
                ground_truth=answers.get(entry["id"]),
            )
        )
    return cases


def sample_cases(cases: list[BfclCase], size: int | None, seed: int) -> list[BfclCase]:
    """`size` cases drawn without replacement (all when `size` is None or larger), kept in BFCL's order.

    The draw depends only on the seed and the category, so every mode and every run with the same seed
    gets the same cases.
    """
    if size is None or size >= len(cases):
        return list(cases)
    if size < 1:
        raise ConfigError(f"The sample size must be at least 1, not {size}.")
    category = cases[0].category if cases else ""
    chosen = set(random.Random(f"{seed}:{category}").sample(range(len(cases)), size))
    return [case for index, case in enumerate(cases) if index in chosen]
