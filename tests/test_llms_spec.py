"""Backends chosen by spec strings."""

from __future__ import annotations

import pytest

from fncall.errors import ConfigError
from fncall.llms import LLM, OpenAICompatible, Scripted, from_spec, register_scheme
from fncall.llms import spec as spec_module


def test_openai_server_url_with_model() -> None:
    llm = from_spec("openai:http://127.0.0.1:8000/v1#qwen2.5-0.5b")
    assert isinstance(llm, OpenAICompatible)
    assert (llm.base_url, llm.model, llm.max_tokens_field) == (
        "http://127.0.0.1:8000/v1",
        "qwen2.5-0.5b",
        "max_tokens",
    )


def test_openai_server_url_model_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FNCALL_MODEL", raising=False)
    assert from_spec("openai:https://llm.internal/v1").model == "default"
    monkeypatch.setenv("FNCALL_MODEL", "from-env")
    assert from_spec("openai:https://llm.internal/v1#").model == "from-env"


def test_openai_model_name_uses_api_openai_com(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    llm = from_spec("openai:gpt-4o-mini")
    assert isinstance(llm, OpenAICompatible)
    assert (llm.base_url, llm.model, llm.max_tokens_field) == (
        "https://api.openai.com/v1",
        "gpt-4o-mini",
        "max_completion_tokens",
    )
    assert llm._client.api_key == "sk-test"


def test_openai_model_name_without_a_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        from_spec("openai:gpt-4o-mini")


@pytest.mark.parametrize("spec", ["openai:", "openai:gpt-4o#x"])
def test_malformed_openai_specs(spec: str) -> None:
    with pytest.raises(ConfigError, match="openai:http://HOST:PORT/v1#model"):
        from_spec(spec)


@pytest.mark.parametrize("spec", ["", "just-a-name", ":http://x"])
def test_specs_without_a_scheme_name_the_spec_and_the_schemes(spec: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_spec(spec)
    assert repr(spec) in str(caught.value)
    assert "anthropic, bedrock, local, openai" in str(caught.value)


def test_an_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"Unknown scheme 'ollama' in the LLM spec 'ollama:llama3'; known schemes: "
    ):
        from_spec("ollama:llama3")


def test_registered_schemes_receive_the_rest_of_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec_module, "_SCHEMES", dict(spec_module._SCHEMES))
    register_scheme("echo", lambda rest: Scripted([rest], model=rest))
    llm = from_spec("echo:hello#there")
    assert isinstance(llm, LLM)
    assert llm.model == "hello#there"
    register_scheme("scripted", "fncall.llms.scripted:Scripted")
    assert from_spec("scripted:abc").model == "scripted"


def test_a_missing_module_is_a_config_error_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec_module, "_SCHEMES", dict(spec_module._SCHEMES))
    register_scheme("local", "fncall_no_such_module:from_spec")
    with pytest.raises(ConfigError, match=r"'local' backend is not available.*pip install 'fncall\[local\]'"):
        from_spec("local:qwen")


def test_a_missing_factory_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec_module, "_SCHEMES", dict(spec_module._SCHEMES))
    register_scheme("odd", "fncall.llms.scripted:no_such_factory")
    with pytest.raises(ConfigError, match="has no 'no_such_factory'"):
        from_spec("odd:x")


@pytest.mark.parametrize(("name", "factory"), [("bad name", "a:b"), ("ok", "no-colon"), ("ok", "a:b:c")])
def test_register_scheme_checks_its_arguments(name: str, factory: str) -> None:
    with pytest.raises(ConfigError):
        register_scheme(name, factory)


def test_anthropic_schemes_point_at_the_anthropic_module() -> None:
    assert spec_module._SCHEMES["anthropic"] == "fncall.llms.anthropic:from_spec"
    assert spec_module._SCHEMES["bedrock"] == "fncall.llms.anthropic:bedrock_from_spec"
    assert spec_module._SCHEMES["local"] == "fncall.llms.local:from_spec"
