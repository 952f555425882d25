import importlib.metadata as md
from pathlib import Path

import pytest

from rag import packaged
from rag.errors import ModelMissingError
from rag.packaged import PackagedGGUF, ensure_gguf


class FakeDist:
    def __init__(self, root: Path, files: list[str], version: str = "1.0") -> None:
        self.root, self.files, self.version = root, files, version

    def locate_file(self, f):
        return self.root / f


def fake_parts(tmp_path, monkeypatch, chunks: list[bytes], version="1.0"):
    dists = {}
    for i, data in enumerate(chunks, 1):
        root = tmp_path / f"site{i}"
        (root / f"pkg{i}" / "data").mkdir(parents=True)
        (root / f"pkg{i}" / "data" / f"part{i:02d}.bin").write_bytes(data)
        dists[f"fake-part{i}"] = FakeDist(root, [f"pkg{i}/data/part{i:02d}.bin", f"pkg{i}/__init__.py"], version)

    def distribution(name):
        if name not in dists:
            raise md.PackageNotFoundError(name)
        return dists[name]

    monkeypatch.setattr(packaged.md, "distribution", distribution)


def spec(sha: str, n: int = 2) -> PackagedGGUF:
    return PackagedGGUF(
        "fake", "fake.gguf", tuple(f"fake-part{i}" for i in range(1, n + 1)), "1.0", sha, "data/part*.bin"
    )


def test_parts_are_joined_in_order_and_verified(tmp_path, monkeypatch):
    import hashlib

    fake_parts(tmp_path, monkeypatch, [b"GGUF-head", b"-tail"])
    sha = hashlib.sha256(b"GGUF-head-tail").hexdigest()
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "fake", spec(sha))
    out = ensure_gguf("fake", tmp_path / "cache", progress=False)
    assert out.read_bytes() == b"GGUF-head-tail"
    mtime = out.stat().st_mtime_ns
    assert ensure_gguf("fake", tmp_path / "cache", progress=False) == out  # reused, not rejoined
    assert out.stat().st_mtime_ns == mtime


def test_wrong_hash_fails_clearly_and_leaves_nothing(tmp_path, monkeypatch):
    fake_parts(tmp_path, monkeypatch, [b"a", b"b"])
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "fake", spec("0" * 64))
    with pytest.raises(ModelMissingError, match="sha256"):
        ensure_gguf("fake", tmp_path / "cache", progress=False)
    assert not any((tmp_path / "cache" / "models").iterdir())


def test_missing_part_package_names_it(tmp_path, monkeypatch):
    fake_parts(tmp_path, monkeypatch, [b"a"])
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "fake", spec("0" * 64, n=2))
    with pytest.raises(ModelMissingError, match="fake-part2==1.0 is not installed"):
        ensure_gguf("fake", tmp_path / "cache", progress=False)


def test_real_packages_are_installed_at_pinned_versions():
    for spec_ in packaged.PACKAGED_MODELS.values():
        assert len(packaged.part_files(spec_)) == len(spec_.dists)
    assert (packaged.embedding_model_dir() / "config.json").is_file()
