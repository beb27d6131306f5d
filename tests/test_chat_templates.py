"""Chat templates: the sandbox, Hugging Face compatibility, prompts per family, format detection."""

from __future__ import annotations

import re

import pytest

from fncall.errors import ConfigError
from fncall.formats.chat import ChatTemplate, ChatTemplateError, detect_format, get_format
from fncall.formats.chat.mistral import mistral_call_id
from fncall.types import Message, ToolCall, ToolResult, ToolSpec

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)

# A short Qwen-style template written for these tests: tools in a system block, calls in <tool_call> tags.
QWEN_LIKE = """
{%- if tools %}
<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}
# Tools
<tools>
{% for tool in tools %}
{{ tool | tojson }}
{% endfor %}
</tools><|im_end|>
{% endif %}
{% for message in messages %}
{% if message.role == 'system' and tools %}{% continue %}{% endif %}
{% if message.tool_calls %}
<|im_start|>assistant
{% for call in message.tool_calls %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>
{% endfor %}
<|im_end|>
{% elif message.role == 'tool' %}
<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% else %}
<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{% endfor %}
{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}
"""

# SmolLM2-style ChatML without tool support
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _conversation(content: str = "12 C", is_error: bool = False) -> list[Message]:
    call = ToolCall(id="call_abc", name="get_weather", arguments={"city": "Zürich", "unit": "C"})
    return [
        Message.system("Be brief."),
        Message.user("Weather in Zürich?"),
        Message.assistant(tool_calls=[call]),
        Message.tool(ToolResult(call_id="call_abc", name="get_weather", content=content, is_error=is_error)),
    ]


# ---------------------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    "source",
    [
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ messages.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ messages.append(1) }}",
    ],
)
def test_sandbox_blocks_escapes(source: str) -> None:
    with pytest.raises(ChatTemplateError, match="failed to render"):
        ChatTemplate(source).render([Message.user("hi")])


def test_template_errors_are_clear_config_errors() -> None:
    with pytest.raises(ChatTemplateError, match="does not compile"):
        ChatTemplate("{% for %}")
    failing = ChatTemplate("{{ raise_exception('Conversation roles must alternate user/assistant') }}")
    with pytest.raises(ChatTemplateError, match="roles must alternate") as raised:
        failing.render([Message.user("hi")])
    assert isinstance(raised.value, ConfigError)


def test_huggingface_helpers_and_whitespace_control() -> None:
    template = ChatTemplate(
        "  {% if true %}\n{{ {'b': 1, 'a': 'é'} | tojson }}|{{ strftime_now('%Y') }}|"
        "{% generation %}{{ bos_token }}{{ eos_token }}{% endgeneration %}\n  {% endif %}\n",
        bos_token="<s>",
        eos_token="</s>",
    )
    rendered = template.render([])
    assert re.fullmatch(r'\{"b": 1, "a": "é"\}\|\d{4}\|<s></s>', rendered)


def test_arguments_reach_the_template_as_mappings_not_strings() -> None:
    template = ChatTemplate(
        "{% for m in messages %}{% for c in m.tool_calls or [] %}"
        "{{ c.function.arguments is mapping }} {{ c.function.arguments | tojson }}"
        "{% endfor %}{% endfor %}"
    )
    assert template.render(_conversation()[:3]) == 'True {"city": "Zürich", "unit": "C"}'


def test_supports_tools_reads_the_template_variables() -> None:
    assert ChatTemplate(QWEN_LIKE).supports_tools is True
    assert ChatTemplate(CHATML).supports_tools is False


# -------------------------------------------------------------------------------------- rendering


def test_hermes_uses_a_template_with_tool_support() -> None:
    prompt = get_format("hermes").render(_conversation(), [WEATHER], template=ChatTemplate(QWEN_LIKE))
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n<tools>\n")
    assert (
        '{"type": "function", "function": {"name": "get_weather", "description": "Current weather' in prompt
    )
    assert (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich", "unit": "C"}}\n</tool_call>'
        in prompt
    )
    assert "<tool_response>\n12 C\n</tool_response>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "You can call the functions below" not in prompt  # our own block is not added


def test_hermes_without_template_renders_chatml_with_its_tool_block() -> None:
    prompt = get_format("hermes").render(
        [Message.system("Be brief."), Message.user("Hi")], [WEATHER], template=None
    )
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n\nYou can call the functions below")
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in prompt
    assert prompt.endswith("<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_generic_shows_tools_calls_and_results_through_a_template_without_tools() -> None:
    prompt = get_format("generic").render(
        _conversation("city not found", is_error=True),
        [WEATHER],
        template=ChatTemplate(CHATML),
        add_generation_prompt=False,
    )
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\nYou can use these tools:\n")
    assert (
        'reply with exactly <tool_call>{"name": "<tool name>", "arguments": {<arguments>}}</tool_call>'
        in prompt
    )
    assert (
        "<|im_start|>assistant\n"
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Zürich", "unit": "C"}}</tool_call>'
        "<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nError: city not found\n</tool_response><|im_end|>\n"
    ) in prompt
    assert prompt.endswith("</tool_response><|im_end|>\n")


def test_generic_without_tools_leaves_the_conversation_alone() -> None:
    prompt = get_format("generic").render([Message.user("Hi")], [], template=ChatTemplate(CHATML))
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_llama3_without_template_uses_headers_and_parameters_key() -> None:
    prompt = get_format("llama3").render(_conversation(), [WEATHER], template=None)
    assert prompt.startswith("<|start_header_id|>system<|end_header_id|>\n\nBe brief.\n\nYou can call")
    assert '{"name": "get_weather", "parameters": {"city": "Zürich", "unit": "C"}}<|eot_id|>' in prompt
    assert "<|start_header_id|>user<|end_header_id|>\n\nResult of get_weather: 12 C<|eot_id|>" in prompt
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_mistral_ids_are_nine_characters_for_its_templates() -> None:
    strict = ChatTemplate(
        "{% for m in messages %}"
        "{% for c in m.tool_calls or [] %}{% if c.id | length != 9 %}"
        "{{ raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}{% endif %}"
        "[TOOL_CALLS]{{ c.id }}{% endfor %}"
        "{% if m.role == 'tool' %}[TOOL_RESULTS]{{ m.tool_call_id }}{% endif %}"
        "{% endfor %}{{ tools | length }}"
    )
    prompt = get_format("mistral").render(_conversation(), [WEATHER], template=strict)
    short = mistral_call_id("call_abc")
    assert re.fullmatch(r"[0-9a-f]{9}", short)
    assert prompt == f"[TOOL_CALLS]{short}[TOOL_RESULTS]{short}1"


def test_a_template_that_rejects_system_turns_gets_the_tools_in_the_first_user_turn() -> None:
    no_system = ChatTemplate(
        "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    )
    prompt = get_format("generic").render(
        [Message.system("Be brief."), Message.user("Hi")], [WEATHER], template=no_system
    )
    assert prompt.startswith("<user>Be brief.\n\nYou can use these tools:\n")
    assert prompt.endswith("and nothing else.\n\nHi")


def test_mistral_without_template_puts_tools_into_the_first_instruction() -> None:
    prompt = get_format("mistral").render(_conversation(), [WEATHER], template=None)
    assert prompt.startswith('[INST] Be brief.\n\n[AVAILABLE_TOOLS][{"type": "function"')
    assert '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Zürich", "unit": "C"}}]</s>' in prompt
    assert prompt.endswith(
        f'[INST] [TOOL_RESULTS]{{"call_id": "{mistral_call_id("call_abc")}", "content": "12 C"}}'
        "[/TOOL_RESULTS][/INST]"
    )


# -------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (QWEN_LIKE, "hermes"),
        ("{% if tools %}<tools>{{ tools }}</tools>{% endif %}<tool_call>", "hermes"),
        (
            "{% for m in messages %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{% endfor %}",
            "mistral",
        ),
        ("{% if m.tool_calls %}[TOOL_CALLS]{{ m.tool_calls | tojson }}{% endif %}", "mistral"),
        ("{{ '<|python_tag|>' + tool_call.name }}", "llama3"),
        ("<|start_header_id|>ipython<|end_header_id|>{{ custom_tools }}", "llama3"),
        ("<|start_header_id|>{{ m.role }}<|end_header_id|>{% if tools %}{{ tools }}{% endif %}", "llama3"),
        ("<|start_header_id|>{{ m.role }}<|end_header_id|>{{ m.content }}", "generic"),
        (CHATML, "generic"),
        ("", "generic"),
        (None, "generic"),
    ],
)
def test_detect_format_from_template_text(source: str | None, expected: str) -> None:
    assert detect_format(source).name == expected


def test_detect_format_accepts_a_compiled_template() -> None:
    assert detect_format(ChatTemplate(QWEN_LIKE)).name == "hermes"
