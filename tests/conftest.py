"""Shared fixtures: a tiny corpus in a temp folder, a built fake index, and a fake pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.citations import CitationChecker
from rag.indexing import build_index
from rag.pipeline import RagPipeline
from rag.retrieval import HybridRetriever
from rag.settings import Settings
from tests.fakes import HashEmbedder, ScriptedGenerator, write_corpus


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: runs the real packaged models (minutes)")
    config.addinivalue_line("markers", "browser: drives headless Chromium")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose every folder is under a temp dir (no test writes into the working tree)."""
    return Settings(
        corpus_dir=write_corpus(tmp_path / "corpus"),
        index_dir=tmp_path / "index",
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        chunk_size=300,
        chunk_overlap=40,
        min_relevance=0.05,
    )


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def index_data(settings: Settings, embedder: HashEmbedder):
    return build_index(settings, embedder, progress=False)


@pytest.fixture
def make_pipeline(settings: Settings, embedder: HashEmbedder, index_data):
    """`make_pipeline(["reply 1", ...])` -> (pipeline, generator) over the tiny corpus."""

    def make(replies: list[str] | None = None, **kw) -> tuple[RagPipeline, ScriptedGenerator]:
        gen = ScriptedGenerator(replies)
        retriever = HybridRetriever(index_data, embedder, candidates=10)
        checker = CitationChecker(embedder, threshold=kw.pop("threshold", 0.45))
        kw.setdefault("min_relevance", settings.min_relevance)
        kw.setdefault("top_k", 3)
        return RagPipeline(retriever, gen, checker, **kw), gen

    return make
