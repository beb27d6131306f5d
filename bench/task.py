"""The 3-step task the agent benchmarks share: `add(2, 3)`, then `add(5, 5)`, then the answer."""

from __future__ import annotations

TASK = "Add 2 and 3, then add 5 to the result."
INSTRUCTIONS = "You add numbers with the add tool."
FIRST_CALL = {"a": 2, "b": 3}
SECOND_CALL = {"a": 5, "b": 5}
ANSWER = "The result is 10."
STEPS_PER_RUN = 3


def scripted_call(tool_results_seen: int) -> dict[str, int] | None:
    """The arguments of the `add` call a scripted model makes after this many tool results; None once it
    has seen both results and answers."""
    if tool_results_seen == 0:
        return dict(FIRST_CALL)
    if tool_results_seen == 1:
        return dict(SECOND_CALL)
    return None
