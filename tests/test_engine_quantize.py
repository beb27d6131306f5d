"""Re-quantizing a real GGUF (the tiny SmolLM2) with llama.cpp's quantizer, through the API and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fncall.cli import app
from fncall.engine.models import MODELS, is_fetched, resolve
from fncall.engine.quantize import QUANT_TYPES, quantize
from fncall.errors import ConfigError

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def tiny_model() -> Path:
    if not is_fetched(MODELS["smollm2-135m"]):
        pytest.skip("smollm2-135m is not fetched (run `make model`)")
    return resolve("smollm2-135m")


def _metadata(path: Path) -> dict[str, str]:
    import llama_cpp

    model = llama_cpp.Llama(str(path), n_ctx=64, vocab_only=True, verbose=False)
    try:
        return dict(model.metadata)
    finally:
        model.close()


def test_quantize_writes_a_loadable_model_of_the_asked_type(tiny_model: Path, tmp_path: Path) -> None:
    import llama_cpp

    from fncall.engine.model import LocalModel, SamplingSettings

    target = quantize(tiny_model, tmp_path / "tiny-q8.gguf", "q8_0", output_type="q8_0", threads=2)
    assert target == tmp_path / "tiny-q8.gguf"
    assert _metadata(target)["general.file_type"] == str(llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)
    assert [path.name for path in tmp_path.iterdir()] == ["tiny-q8.gguf"]  # no temporary file left
    model = LocalModel(target, n_ctx=256, n_threads=2)
    try:
        generation = model.generation(
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", SamplingSettings(max_tokens=4)
        )
        list(generation)
        assert generation.completion_tokens > 0
    finally:
        model.close()


def test_quantize_refuses_what_it_cannot_do_and_leaves_nothing(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Unknown quantization 'q3_xyz'; known: q4_0"):
        quantize(tiny_model, tmp_path / "x.gguf", "q3_xyz")
    with pytest.raises(ConfigError, match="give the output one type"):
        quantize(tiny_model, tmp_path / "x.gguf", "q4_0", output_type="q4_k_m")
    with pytest.raises(ConfigError, match="No model file"):
        quantize(tmp_path / "missing.gguf", tmp_path / "x.gguf", "q4_0")
    with pytest.raises(ConfigError, match="not over its source"):
        quantize(tiny_model, tiny_model, "q4_0")
    not_a_model = tmp_path / "notes.gguf"
    not_a_model.write_bytes(b"not a gguf file")
    with pytest.raises(ConfigError, match="could not quantize"):
        quantize(not_a_model, tmp_path / "x.gguf", "q4_0")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.gguf"]
    assert "iq4_nl" in QUANT_TYPES and QUANT_TYPES["iq4_nl"].tensor_type == "GGML_TYPE_IQ4_NL"


def test_cli_quantizes_a_catalogued_alias(tiny_model: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["models", "quantize", "smollm2-135m", str(tmp_path / "t.gguf"), "--type", "q4_0"]
    )
    assert result.exit_code == 0, result.output
    assert "t.gguf" in result.output and (tmp_path / "t.gguf").stat().st_size > 50_000_000
    failed = CliRunner().invoke(
        app, ["models", "quantize", "smollm2-135m", str(tmp_path / "u.gguf"), "--type", "nope"]
    )
    assert failed.exit_code != 0 and "Unknown quantization 'nope'" in failed.output
