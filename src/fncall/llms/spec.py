"""Backends named by a URI-like spec, so config files and the CLI can choose one with a single string.

    openai:http://127.0.0.1:8000/v1#qwen     any OpenAI-compatible server (model after '#', optional)
    openai:gpt-4o-mini                       api.openai.com, key from OPENAI_API_KEY
    anthropic:claude-sonnet-4-5              Anthropic's API
    bedrock:anthropic.claude-3-haiku-...     Anthropic models on AWS Bedrock
    local:  local:ALIAS  local:/path/m.gguf  the embedded engine (needs the `local` extra)

Each scheme maps to a factory named "module:function" that receives the text after "scheme:". Factories are
imported only when their scheme is used, so optional extras stay optional; `register_scheme` adds more.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from fncall.errors import ConfigError
from fncall.llms.base import LLM

Factory = Callable[[str], LLM]

OPENAI_API_URL = "https://api.openai.com/v1"
DEFAULT_MODEL_ENV = "FNCALL_MODEL"

_SCHEMES: dict[str, str | Factory] = {
    "openai": "fncall.llms.spec:openai_from_spec",
    "anthropic": "fncall.llms.anthropic:from_spec",
    "bedrock": "fncall.llms.anthropic:bedrock_from_spec",
    "local": "fncall.llms.local:from_spec",
    "triton": "fncall.llms.triton:from_spec",
}

# The optional extra that provides each scheme's dependencies, named in the error when they are missing.
_EXTRAS = {"anthropic": "anthropic", "bedrock": "anthropic", "local": "local"}


def register_scheme(name: str, factory: str | Factory) -> None:
    """Make `name:...` specs build backends with `factory` ("module:function" or a callable)."""
    if not name.isidentifier():
        raise ConfigError(f"A spec scheme must be a plain word, not {name!r}.")
    if isinstance(factory, str) and factory.count(":") != 1:
        raise ConfigError(f"A scheme factory must be written 'module:function', not {factory!r}.")
    _SCHEMES[name] = factory


def known_schemes() -> list[str]:
    return sorted(_SCHEMES)


def from_spec(spec: str) -> LLM:
    """The backend a spec names, e.g. `openai:http://127.0.0.1:8000/v1#qwen` or `local:`."""
    scheme, separator, rest = spec.strip().partition(":")
    if not separator or not scheme:
        raise ConfigError(
            f"Cannot read the LLM spec {spec!r}: write 'scheme:details', with a scheme among "
            f"{', '.join(known_schemes())} (e.g. 'openai:http://127.0.0.1:8000/v1#model')."
        )
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"Unknown scheme {scheme!r} in the LLM spec {spec!r}; "
            f"known schemes: {', '.join(known_schemes())}."
        )
    try:
        factory = _resolve(_SCHEMES[scheme])
        return factory(rest)
    except ModuleNotFoundError as error:  # a backend whose optional dependencies are not installed
        extra = _EXTRAS.get(scheme)
        hint = f" Install it with: pip install 'fncall[{extra}]'." if extra else ""
        raise ConfigError(
            f"The {scheme!r} backend is not available: module {error.name!r} is missing.{hint}"
        ) from error


def _resolve(factory: str | Factory) -> Factory:
    if callable(factory):
        return factory
    module_name, _, function_name = factory.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise ConfigError(
            f"The backend factory {factory!r} does not exist: {module_name} has no {function_name!r}."
        ) from None


def openai_from_spec(rest: str) -> LLM:
    """`openai:` specs: a server URL with an optional '#model', or a model name on api.openai.com."""
    from fncall.llms.openai_compat import OpenAICompatible

    target, _, model = rest.strip().partition("#")
    if target.startswith(("http://", "https://")):
        return OpenAICompatible(target, model or os.environ.get(DEFAULT_MODEL_ENV) or "default")
    if not target or model:
        raise ConfigError(
            f"Cannot read the LLM spec 'openai:{rest}': write 'openai:http://HOST:PORT/v1#model' for a "
            "server, or 'openai:MODEL' for api.openai.com."
        )
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        raise ConfigError(f"The spec 'openai:{target}' uses api.openai.com: set OPENAI_API_KEY first.")
    return OpenAICompatible(OPENAI_API_URL, target, api_key, max_tokens_field="max_completion_tokens")
