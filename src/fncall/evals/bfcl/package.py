"""The one door to the `bfcl-eval` package: its data files and its own AST checker, imported lazily.

`bfcl-eval` is installed with `--no-deps` (its declared dependencies pull torch and CUDA). Its checker module
imports `bfcl_eval.constants.model_config` only to read one flag per model (`underscore_to_dot`), and that
module imports every provider SDK BFCL supports. So before the checker is imported, a stand-in registry
holding one entry for fncall is put in its place; the checker's own code runs unchanged. Data loading needs
`filelock`, and BFCL creates `result/`, `score/` and a lock folder under `BFCL_PROJECT_ROOT` when imported,
so that root is pointed at fncall's data directory unless the user set it.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from fncall.errors import ConfigError
from fncall.paths import data_dir

BFCL_EVAL_VERSION = "2026.3.23"
INSTALL_HINT = f"pip install --no-deps bfcl-eval=={BFCL_EVAL_VERSION} filelock==3.20.0"
CHECKER_MODEL_NAME = "fncall"
"""The model name fncall passes to BFCL's checker; its registry entry keeps dotted names as they are,
because fncall maps sanitised names back before scoring."""

_MODEL_CONFIG_MODULE = "bfcl_eval.constants.model_config"
_PROJECT_ROOT_ENV = "BFCL_PROJECT_ROOT"


@dataclass(frozen=True)
class _CheckerModelConfig:
    """The only field of BFCL's ModelConfig its AST checker reads."""

    underscore_to_dot: bool = False


@dataclass(frozen=True)
class BfclPackage:
    """The parts of `bfcl-eval` fncall uses."""

    load_dataset_entry: Callable[..., list[dict[str, Any]]]
    load_ground_truth_entry: Callable[[str], list[dict[str, Any]]]
    ast_checker: Callable[..., dict[str, Any]]
    is_empty_output: Callable[[Any], bool]
    python_language: Any


@cache
def bfcl_package() -> BfclPackage:
    """Import `bfcl-eval` once; raises ConfigError with the install command when it is missing."""
    os.environ.setdefault(_PROJECT_ROOT_ENV, str(data_dir() / "bfcl"))
    try:
        _install_checker_model_registry()
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
        from bfcl_eval.utils import is_empty_output, load_dataset_entry, load_ground_truth_entry
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"The BFCL evaluation needs the bfcl-eval package (module {error.name!r} is missing). "
            f"Install it with: {INSTALL_HINT}"
        ) from error
    return BfclPackage(
        load_dataset_entry=load_dataset_entry,
        load_ground_truth_entry=load_ground_truth_entry,
        ast_checker=ast_checker,
        is_empty_output=is_empty_output,
        python_language=Language.PYTHON,
    )


def _install_checker_model_registry() -> None:
    """Give the checker a model registry with fncall's entry, without importing every provider SDK."""
    module = sys.modules.get(_MODEL_CONFIG_MODULE)
    if module is None:
        module = types.ModuleType(_MODEL_CONFIG_MODULE)
        module.__doc__ = "fncall's stand-in for BFCL's model registry (read by the AST checker only)."
        module.MODEL_CONFIG_MAPPING = {}  # type: ignore[attr-defined]
        sys.modules[_MODEL_CONFIG_MODULE] = module
    module.MODEL_CONFIG_MAPPING.setdefault(CHECKER_MODEL_NAME, _CheckerModelConfig())
