"""Grammar text and the constraint policy for each tool_choice (no model: llama.cpp only parses them)."""

from __future__ import annotations

import llama_cpp
import pytest

from fncall.engine.grammar import (
    call_grammar,
    call_object_schema,
    opener_for_trigger,
    plan_constraint,
    response_format_grammar,
)
from fncall.errors import InvalidRequestError
from fncall.formats.chat.base import CallLayout
from fncall.types import ToolSpec

HERMES = CallLayout(
    prefix="<tool_call>\n", suffix="\n</tool_call>", separator="\n</tool_call>\n<tool_call>\n"
)
BARE = CallLayout(prefix="", suffix="", separator="\n")
TRIGGERS = ("<tool_call>", "```json", "{")

CONVERT = ToolSpec(
    name="convert_currency",
    description="Convert an amount between currencies.",
    parameters={
        "type": "object",
        "properties": {
            "from_currency": {"type": "string"},
            "to_currency": {"type": "string"},
            "amount": {"type": "number"},
        },
        "required": ["from_currency", "to_currency", "amount"],
    },
)
WEATHER = ToolSpec(
    name="get_weather",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "unit": {"enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
)
NO_ARGS = ToolSpec(name="now")


def _parses(gbnf: str) -> bool:
    """Whether llama.cpp's own grammar parser accepts the text (no vocabulary needed to parse)."""
    sampler = llama_cpp.llama_sampler_init_grammar(None, gbnf.encode(), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


def _rules(gbnf: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in gbnf.strip().splitlines())


def test_call_schema_fixes_the_name_and_carries_the_parameters() -> None:
    schema = call_object_schema(CONVERT)
    assert schema["properties"]["name"] == {"const": "convert_currency"}
    assert schema["properties"]["arguments"] == CONVERT.parameters
    assert schema["required"] == ["name", "arguments"]
    assert call_object_schema(NO_ARGS)["properties"]["arguments"] == {"type": "object", "properties": {}}


def test_layout_grammar_for_one_call() -> None:
    grammar = call_grammar([CONVERT, WEATHER], HERMES, parallel=False, opener="layout")
    rules = _rules(grammar.gbnf)
    assert rules["root"] == "layout-form"
    assert rules["layout-form"] == '"<tool_call>\\n" layout-calls "\\n</tool_call>"'
    assert rules["layout-calls"] == "call"
    assert rules["call"] == "tool0 | tool1"
    assert rules["tool0-name"] == '"\\"convert_currency\\""'
    assert rules["tool1-name"] == '"\\"get_weather\\""'
    # name first, then arguments; required keys are not optional
    assert rules["tool0"] == '"{" space tool0-name-kv "," space tool0-arguments-kv "}" space'
    assert rules["tool1-arguments-unit"] == '"\\"celsius\\"" | "\\"fahrenheit\\""'
    assert rules["tool1-arguments-city"].count("(char") == 20  # maxLength 20
    assert grammar.triggers == ()
    assert _parses(grammar.gbnf)


def test_layout_grammar_for_parallel_calls_uses_the_separator() -> None:
    rules = _rules(call_grammar([CONVERT], HERMES, parallel=True, opener="layout").gbnf)
    assert rules["layout-calls"] == 'call ("\\n</tool_call>\\n<tool_call>\\n" call)*'


def test_strings_cannot_hold_raw_control_characters_but_json_may_be_indented() -> None:
    rules = _rules(call_grammar([CONVERT], HERMES, parallel=False).gbnf)
    assert rules["char"].startswith('[^"\\\\\\x7F\\x00-\\x1F]')
    assert rules["space"] == '| " " | "\\n" [ \\t]{0,20}'


def test_any_opener_lets_the_model_pick_its_own_syntax() -> None:
    grammar = call_grammar([CONVERT], HERMES, parallel=False)
    assert _rules(grammar.gbnf)["root"] == "layout-form | fence-form | bare-calls"
    assert _parses(grammar.gbnf)
    # with no prefix the layout form already is the bare form
    assert _rules(call_grammar([CONVERT], BARE, parallel=False).gbnf)["root"] == "layout-form | fence-form"


def test_fence_and_bare_openers() -> None:
    fence = call_grammar([CONVERT], HERMES, parallel=False, opener="fence")
    assert _rules(fence.gbnf)["root"] == "fence-form"
    assert _rules(fence.gbnf)["fence-form"] == '"```" "json"? "\\n" fenced-calls "\\n"? "```"'
    assert _parses(fence.gbnf)
    bare = call_grammar([CONVERT, NO_ARGS], BARE, parallel=True, opener="bare")
    assert _rules(bare.gbnf)["root"] == "bare-calls"
    assert _rules(bare.gbnf)["bare-calls"] == 'call ("\\n" call)*'
    assert _parses(bare.gbnf)
    with pytest.raises(ValueError, match="unknown call opener"):
        call_grammar([CONVERT], HERMES, parallel=False, opener="xml")


def test_an_empty_prefix_is_left_out() -> None:
    gbnf = call_grammar([CONVERT], BARE, parallel=False, opener="layout").gbnf
    assert _rules(gbnf)["layout-form"] == "layout-calls"
    assert _parses(gbnf)


def test_opener_for_each_trigger() -> None:
    assert opener_for_trigger("<tool_call>", HERMES) == "layout"
    assert opener_for_trigger("```json", HERMES) == "fence"
    assert opener_for_trigger("{", HERMES) == "bare"


def test_required_is_constrained_from_the_first_token() -> None:
    plan = plan_constraint(
        [CONVERT, WEATHER], "required", HERMES, TRIGGERS, parallel=True, constrain_auto=False
    )
    assert plan.grammar is not None
    assert _rules(plan.grammar.gbnf)["call"] == "tool0 | tool1"
    assert plan.prompt_tools == plan.call_tools == (CONVERT, WEATHER)
    assert plan.constrain_after_trigger is False


def test_a_named_choice_allows_that_tool_only() -> None:
    plan = plan_constraint(
        [CONVERT, WEATHER], {"name": "get_weather"}, HERMES, TRIGGERS, parallel=False, constrain_auto=False
    )
    assert plan.grammar is not None
    rules = _rules(plan.grammar.gbnf)
    assert rules["call"] == "tool0"
    assert rules["tool0-name"] == '"\\"get_weather\\""'
    assert plan.prompt_tools == (CONVERT, WEATHER)
    assert plan.call_tools == (WEATHER,)


def test_none_drops_tools_and_bans_tag_openers_only() -> None:
    plan = plan_constraint([CONVERT], "none", HERMES, TRIGGERS, parallel=True, constrain_auto=True)
    assert plan.prompt_tools == plan.call_tools == ()
    assert plan.grammar is None
    assert plan.banned_prefixes == ("<tool_call>",)


def test_auto_is_free_unless_constrained() -> None:
    free = plan_constraint([CONVERT], "auto", HERMES, TRIGGERS, parallel=True, constrain_auto=False)
    assert free.grammar is None and free.constrain_after_trigger is False
    constrained = plan_constraint([CONVERT], "auto", HERMES, TRIGGERS, parallel=True, constrain_auto=True)
    assert constrained.grammar is None and constrained.constrain_after_trigger is True
    assert constrained.call_tools == (CONVERT,)


def test_a_request_grammar_constrains_the_whole_reply_and_excludes_tools() -> None:
    plan = plan_constraint([], "auto", HERMES, TRIGGERS, parallel=True, constrain_auto=True, grammar=GBNF_YES)
    assert plan.grammar is not None
    assert (plan.grammar.gbnf, plan.grammar.param, plan.grammar.triggers) == (GBNF_YES, "grammar", ())
    assert plan.prompt_tools == plan.call_tools == ()
    with_none = plan_constraint(
        [CONVERT], "none", HERMES, TRIGGERS, parallel=True, constrain_auto=False, grammar=GBNF_YES
    )
    assert with_none.grammar is not None and with_none.prompt_tools == ()
    for tool_choice, response_format in (("auto", None), ("none", {"type": "json_object"})):
        with pytest.raises(InvalidRequestError) as caught:
            plan_constraint(
                [CONVERT] if tool_choice == "auto" else [],
                tool_choice,
                HERMES,
                TRIGGERS,
                parallel=True,
                constrain_auto=False,
                response_format=response_format,
                grammar=GBNF_YES,
            )
        assert caught.value.param == "grammar"


GBNF_YES = 'root ::= "yes"'


def test_policy_errors_name_the_parameter() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan_constraint([CONVERT], {"name": "nope"}, HERMES, TRIGGERS, parallel=True, constrain_auto=False)
    assert caught.value.param == "tool_choice"
    with pytest.raises(InvalidRequestError) as caught:
        plan_constraint([], "required", HERMES, TRIGGERS, parallel=True, constrain_auto=False)
    assert caught.value.param == "tool_choice"


def test_response_format_grammars() -> None:
    assert response_format_grammar(None) is None
    assert response_format_grammar({"type": "text"}) is None
    json_object = response_format_grammar({"type": "json_object"})
    assert json_object is not None and _parses(json_object.gbnf)
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    grammar = response_format_grammar({"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    assert grammar is not None and _parses(grammar.gbnf)
    assert _rules(grammar.gbnf)["root"] == "answer"
    with pytest.raises(InvalidRequestError) as caught:
        response_format_grammar({"type": "json_schema", "json_schema": {"name": "a"}})
    assert caught.value.param == "response_format"
    with pytest.raises(InvalidRequestError):
        response_format_grammar({"type": "yaml"})


def test_response_format_applies_in_auto_without_tools() -> None:
    plan = plan_constraint(
        [],
        "auto",
        HERMES,
        TRIGGERS,
        parallel=True,
        constrain_auto=True,
        response_format={"type": "json_object"},
    )
    assert plan.grammar is not None and plan.constrain_after_trigger is False
