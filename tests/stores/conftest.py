"""Fixtures that run the same tests on every vector store: FAISS, and Milvus Lite in a fresh
folder per test (a Lite database is locked to one process)."""

from __future__ import annotations

import pytest

from rag.settings import Settings


def has_milvus_lite() -> bool:
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError:
        return False
    return True


needs_milvus_lite = pytest.mark.skipif(not has_milvus_lite(), reason="pymilvus and milvus-lite are not installed")


@pytest.fixture(params=["faiss", pytest.param("milvus", marks=needs_milvus_lite)])
def store_settings(request, settings: Settings, tmp_path) -> Settings:
    """The tiny-corpus settings with `vector_store` set to each store in turn."""
    if request.param == "faiss":
        return settings
    return settings.model_copy(update={"vector_store": "milvus", "milvus_uri": str(tmp_path / "lite" / "milvus.db")})


@pytest.fixture
def lite_settings(settings: Settings, tmp_path) -> Settings:
    if not has_milvus_lite():
        pytest.skip("pymilvus and milvus-lite are not installed")
    return settings.model_copy(update={"vector_store": "milvus", "milvus_uri": str(tmp_path / "lite" / "milvus.db")})
