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
    config.addinivalue_line("markers", "milvus_server: starts a Milvus server on 127.0.0.1 (`make milvus-servers`)")
    config.addinivalue_line(
        "markers", "milvus_standalone: a real Milvus deployment at RAG_TEST_MILVUS_URI (deploy/docker-compose.yml)"
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose every folder is under a temp dir (no test writes into the working tree)."""
    return Settings(
        corpus_dir=write_corpus(tmp_path / "corpus"),
        index_dir=tmp_path / "index",
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
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
        gen = ScriptedGenerator(replies, per_word_s=kw.pop("per_word_s", 0.0))
        retriever = HybridRetriever(index_data, embedder, candidates=10)
        checker = CitationChecker(embedder, **({"threshold": kw.pop("threshold")} if "threshold" in kw else {}))
        kw.setdefault("min_relevance", settings.min_relevance)
        kw.setdefault("top_k", 3)
        # Most tests compare the served answer with the scripted reply; the key passage has its own.
        kw.setdefault("key_passage", False)
        return RagPipeline(retriever, gen, checker, **kw), gen

    return make


# --- the real packaged models, loaded once per session, for tests marked slow -----------------

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory) -> Settings:
    """Production defaults over the real corpus, with the index and data in a temp folder."""
    tmp = tmp_path_factory.mktemp("real")
    return Settings(corpus_dir=ROOT / "corpus", index_dir=tmp / "index", data_dir=tmp / "data")


@pytest.fixture(scope="session")
def real_embedder():
    from rag.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def real_index(real_settings, real_embedder):
    return build_index(real_settings, real_embedder, progress=False)


@pytest.fixture(scope="session")
def tiny_path(real_settings) -> Path:
    from rag.packaged import ensure_gguf

    return ensure_gguf("smollm2-135m", real_settings.cache_dir, progress=False)


@pytest.fixture(scope="session")
def tiny(tiny_path):
    from rag.generation import LlamaCppGenerator

    return LlamaCppGenerator(tiny_path, n_ctx=4096)


@pytest.fixture(scope="session")
def qwen15(real_settings):
    from rag.generation import LlamaCppGenerator
    from rag.packaged import ensure_gguf

    return LlamaCppGenerator(ensure_gguf("qwen-1.5b", real_settings.cache_dir, progress=False), n_ctx=4096)


@pytest.fixture(scope="session")
def real_pipeline(real_settings, real_embedder, real_index):
    """`real_pipeline(generator)` -> the production pipeline (settings as shipped) with that model."""

    def make(generator, settings: Settings | None = None) -> RagPipeline:
        return RagPipeline.from_settings(settings or real_settings, generator=generator, embedder=real_embedder)

    return make
