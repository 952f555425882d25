"""The scale benchmark's real-text passages (`bench/minilm_vectors.py`, `minilm-text`): runs of corpus
words at distinct places, in an order that does not depend on how many are asked for, and their
vectors embedded in cached blocks that a second run reuses and an interrupted run resumes.
A fake embedder stands in for MiniLM; the corpus is the repository's."""

from __future__ import annotations

import importlib.util
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def mv() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_minilm_vectors", BENCH / "minilm_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(BENCH))


class CountingEmbedder:
    """Deterministic unit vectors from each text's hash; counts the texts it was given."""

    def __init__(self) -> None:
        self.embedded = 0

    def embed_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        self.embedded += len(texts)
        seeds = [zlib.crc32(t.encode()) for t in texts]
        v = np.stack([np.random.default_rng(s).standard_normal(384) for s in seeds]).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_windows_are_runs_of_corpus_words_and_a_prefix_of_a_bigger_draw(mv: ModuleType) -> None:
    words = " ".join(mv.corpus_words())
    small, big = mv.text_windows(300), mv.text_windows(3000)
    assert small == big[:300]
    lo, hi = mv.WINDOW_WORDS
    assert all(lo <= len(t.split()) <= hi for t in big)
    assert all(t in words for t in big[:50])  # each is a contiguous run of the corpus's words
    assert len(set(big)) > 0.99 * len(big)  # distinct places; a repeated phrase may repeat a text


def test_a_draw_larger_than_the_corpus_allows_is_refused(mv: ModuleType) -> None:
    lo, hi = mv.WINDOW_WORDS
    with pytest.raises(ValueError, match="distinct windows"):
        mv.text_windows(len(mv.corpus_words()) * (hi - lo + 1) + 1)


def test_vectors_are_cached_by_block_and_an_interrupted_run_resumes(
    mv: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = CountingEmbedder()
    monkeypatch.setattr(mv, "BLOCK", 100)
    monkeypatch.setattr(mv, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(mv, "embedder", lambda: fake)

    first = mv.text_vectors(250)  # three blocks, the last one embedded whole
    assert first.shape == (250, 384) and fake.embedded == 300
    np.testing.assert_allclose(first, fake.embed_documents(mv.text_windows(250)))

    (block,) = tmp_path.glob("minilm-text-*/block-0001.npy")
    block.unlink()  # as if the run had stopped while embedding the second block
    fake.embedded = 0
    again = mv.text_vectors(300)
    assert fake.embedded == 100  # only the missing block
    np.testing.assert_array_equal(again[:250], first)
