"""Crash safety of `rag index` (issue 9): a process running `build_index` is killed with SIGKILL at
named points (after embedding, mid-write of the build folder, before and after the `CURRENT` swap,
during the cleanup of old builds). The previous index (or the new one, once named) must load, the
corpus must be unchanged, and the next start must get a fresh index."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag.index import load_index
from rag.indexing import expected_manifest, open_index
from tests.crash import kill_at
from tests.test_library_crash import files_under

# The builder: `build_index` as `rag index` runs it, with the fake embedder and pause points patched
# in from outside. At the named point it prints "AT <point>" and waits to be killed.
BUILDER = r"""
import os, shutil, sys, time
from pathlib import Path
from rag.indexing import build_index
from rag.settings import Settings
from rag.stores.faiss import FaissIndex
from tests.fakes import HashEmbedder

root, point = Path(sys.argv[1]), sys.argv[2]
s = Settings(corpus_dir=root / "corpus", index_dir=root / "index", data_dir=root / "data", cache_dir=root / "cache")

def pause(name):
    if name == point:
        print("AT", name, flush=True)
        time.sleep(600)

class Embedder(HashEmbedder):
    def embed_documents(self, texts, progress=False):
        out = super().embed_documents(texts, progress)
        pause("embedded")
        return out

save = FaissIndex.save
def patched_save(self, folder):
    out = save(self, folder)
    pause("mid-write")  # vectors written, chunks and manifest not yet
    return out
FaissIndex.save = patched_save

replace, rmtree = os.replace, shutil.rmtree
def patched_replace(src, dst):
    src, dst = Path(src), Path(dst)
    if src.name.startswith(".tmp-"): pause("build-written")
    if dst.name == "CURRENT": pause("before-pointer")
    replace(src, dst)
    if dst.name == "CURRENT": pause("after-pointer")
def patched_rmtree(path, *a, **k):
    pause("cleanup")
    rmtree(path, *a, **k)
os.replace, shutil.rmtree = patched_replace, patched_rmtree

build_index(s, Embedder(), progress=False)
print("DONE", flush=True)
"""

POINTS = ["embedded", "mid-write", "build-written", "before-pointer", "after-pointer", "cleanup"]
NEW = "# Harbour\n\nThe harbour cranes plan is new.\n"


def run_builder(tmp_path: Path, point: str) -> None:
    """Run the builder until it reaches `point`, then SIGKILL it."""
    kill_at(BUILDER, [str(tmp_path), point], point)


@pytest.mark.parametrize("point", POINTS)
def test_kill_during_rag_index_leaves_a_loadable_index(settings, embedder, index_data, tmp_path, point):
    (settings.corpus_dir / "harbour.md").write_text(NEW)  # the new build differs from the previous one
    corpus = files_under(settings.corpus_dir)
    current = settings.index_dir / "CURRENT"
    before = current.read_text()
    if point == "cleanup":
        time.sleep(1.1)  # a build started in the same second as the new one is kept, so nothing to clean
    run_builder(tmp_path, point)
    assert files_under(settings.corpus_dir) == corpus
    assert not (settings.index_dir / ".CURRENT.tmp").exists() or point == "before-pointer"
    loaded = load_index(settings.index_dir)  # loadable as the kill left it, checksums and all
    if point in ("after-pointer", "cleanup"):
        assert current.read_text() != before and "harbour" in loaded.documents
        load_index(settings.index_dir, expected_manifest(settings, embedder))  # the new index, fresh
    else:
        assert current.read_text() == before and "harbour" not in loaded.documents
        assert [c.chunk_id for c in loaded.chunks] == [c.chunk_id for c in index_data.chunks]
    fresh = open_index(settings, embedder, rebuild=True)  # what the next start does
    assert "harbour" in fresh.documents
    open_index(settings, embedder)  # and the start after that needs no rebuild
    assert files_under(settings.corpus_dir) == corpus
