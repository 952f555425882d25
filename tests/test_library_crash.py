"""Crash safety of uploads and removals, and two writers (issue 9): a writer process is killed with
SIGKILL at named points of `DocumentLibrary.add` / `.remove`, then a restart (the index opened as
`app.py` does, then `build_app`, which reconciles uploads) must find the previous or the new state,
whole: the index loadable, the corpus unchanged, the upload either fully there or fully gone."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from rag.citations import CitationChecker
from rag.index import load_index
from rag.indexing import build_index, open_index, uploads_dir
from rag.library import DocumentLibrary
from rag.pipeline import RagPipeline
from rag.retrieval import HybridRetriever
from rag.serve.server import build_app
from tests.crash import kill_at
from tests.fakes import HashEmbedder, ScriptedGenerator

NOTE = b"# Zephyr lighthouse\n\nThe zephyr lighthouse programme funds coastal AI labs in Cornwall.\n"

# The writer: opens the saved index like the app, patches pause points into the write path, then
# adds or removes `note.md`. At the named point it prints "AT <point>" and waits to be killed.
WRITER = r"""
import os, sys, time
from pathlib import Path
import rag.library as L
from rag.index import load_index
from rag.loaders import load_document
from rag.retrieval import HybridRetriever
from rag.settings import Settings
from tests.fakes import HashEmbedder

root, action, point = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
s = Settings(corpus_dir=root / "corpus", index_dir=root / "index", data_dir=root / "data", cache_dir=root / "cache")

def pause(name):
    if name == point:
        print("AT", name, flush=True)
        time.sleep(600)

replace, unlink = os.replace, Path.unlink
def patched_replace(src, dst):
    src, dst = Path(src), Path(dst)
    point = {".part": "file", "CURRENT": "pointer"}.get(dst.name if dst.name == "CURRENT" else src.suffix)
    if point: pause(f"before-{point}")
    if src.name.startswith(".tmp-"): pause("build-written")
    replace(src, dst)
    if point: pause(f"after-{point}")
def patched_unlink(self, missing_ok=False):
    if self.name == "note.md": pause("before-unlink")
    unlink(self, missing_ok=missing_ok)
os.replace, Path.unlink = patched_replace, patched_unlink

lib = L.DocumentLibrary(HybridRetriever(load_index(s.index_dir), HashEmbedder()), s, loader=load_document)
if action == "add":
    lib.add("note.md", NOTE)
else:
    lib.remove("note")
print("DONE", flush=True)
""".replace("NOTE", repr(NOTE))


def files_under(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def run_writer(tmp_path: Path, action: str, point: str) -> None:
    """Run the writer until it reaches `point`, then SIGKILL it."""
    kill_at(WRITER, [str(tmp_path), action, point], point)


def restart(settings, embedder) -> RagPipeline:
    """What `app.py` does at start: open the index (rebuilding it if stale), then `build_app`."""
    retriever = HybridRetriever(open_index(settings, embedder, rebuild=True), embedder)
    pipe = RagPipeline(retriever, ScriptedGenerator(), CitationChecker(embedder))
    build_app(pipe, settings)
    return pipe


def assert_whole(settings, embedder, pipe: RagPipeline, corpus_before: dict[str, str]) -> bool:
    """The corpus is unchanged, the saved index is fresh, and the upload is in both the folder and the
    index or in neither. Returns whether it is there."""
    assert files_under(settings.corpus_dir) == corpus_before
    up = uploads_dir(settings)
    on_disk = sorted(p.name for p in up.iterdir()) if up.is_dir() else []
    assert on_disk in ([], ["note.md"]), on_disk  # no partial file left behind
    if on_disk:
        assert (up / "note.md").read_bytes() == NOTE
    assert ("note" in pipe.retriever.documents) == bool(on_disk)
    saved = open_index(settings, embedder, rebuild=False)  # fresh: a second restart needs no rebuild
    assert ("note" in saved.documents) == bool(on_disk)
    return bool(on_disk)


ADD_POINTS = ["before-file", "after-file", "build-written", "before-pointer", "after-pointer"]
REMOVE_POINTS = ["build-written", "before-pointer", "after-pointer", "before-unlink"]


@pytest.mark.parametrize("point", ADD_POINTS)
def test_kill_during_an_upload_leaves_a_whole_state(settings, embedder, index_data, tmp_path, point):
    corpus = files_under(settings.corpus_dir)
    before = (settings.index_dir / "CURRENT").read_text()
    run_writer(tmp_path, "add", point)
    load_index(settings.index_dir)  # the index on disk is loadable as the kill left it
    if point in ("before-file", "after-file", "build-written", "before-pointer"):
        assert (settings.index_dir / "CURRENT").read_text() == before  # the previous index is still the one named
    there = assert_whole(settings, embedder, restart(settings, embedder), corpus)
    assert there == (point != "before-file")  # once its file is written, the upload is kept


@pytest.mark.parametrize("point", REMOVE_POINTS)
def test_kill_during_a_removal_leaves_a_whole_state(settings, embedder, index_data, tmp_path, point):
    DocumentLibrary(HybridRetriever(index_data, embedder), settings).add("note.md", NOTE)
    corpus = files_under(settings.corpus_dir)
    run_writer(tmp_path, "remove", point)
    load_index(settings.index_dir)
    assert (uploads_dir(settings) / "note.md").read_bytes() == NOTE  # the file goes last
    there = assert_whole(settings, embedder, restart(settings, embedder), corpus)
    assert there  # killed before the file went, the removal did not happen, and the index says so


def test_an_upload_saved_while_the_index_is_rebuilt_is_not_lost(settings, embedder, index_data):
    """`rag index` reads the documents, an upload is saved meanwhile, then the rebuild saves an index
    without it (stamped with the hash of the files it read, so it reads as stale). The next start
    finds the upload in the folder and indexes it."""
    library = DocumentLibrary(HybridRetriever(index_data, embedder), settings)
    read, go_on = threading.Event(), threading.Event()

    class PausingEmbedder(HashEmbedder):
        def embed_documents(self, texts, progress=False):
            read.set()
            assert go_on.wait(30)
            return super().embed_documents(texts, progress)

    rebuild = threading.Thread(target=build_index, args=(settings, PausingEmbedder()), kwargs={"progress": False})
    rebuild.start()
    assert read.wait(30)
    library.add("note.md", NOTE)
    go_on.set()
    rebuild.join(30)
    assert "note" not in load_index(settings.index_dir).documents  # the rebuild's index lacks the upload

    pipe = restart(settings, embedder)
    assert "note" in pipe.retriever.documents
    assert pipe.retriever.retrieve("zephyr lighthouse coastal labs", 1).hits[0].chunk.doc_id == "note"
    assert "note" in open_index(settings, embedder, rebuild=False).documents


def test_a_corpus_file_added_while_the_app_runs_is_not_hidden_by_an_upload(settings, embedder, index_data):
    """An upload used to stamp the saved index with the hash of every file on disk, so a corpus file
    added meanwhile looked indexed and was left out after a restart."""
    library = DocumentLibrary(HybridRetriever(index_data, embedder), settings)
    (settings.corpus_dir / "harbour.md").write_text("# Harbour\n\nThe harbour cranes plan is new.\n")
    library.add("note.md", NOTE)
    pipe = restart(settings, embedder)
    assert {"harbour", "note"} <= set(pipe.retriever.documents)
