import os

import numpy as np
import pytest

from rag.errors import IndexMissingError, IndexStaleError
from rag.index import load_index
from rag.indexing import build_index, expected_manifest, open_index
from rag.stores.faiss import FaissIndex


def test_faiss_top_k_equals_brute_force():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(200, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q = v[17] + 0.1 * rng.normal(size=32).astype(np.float32)
    store = FaissIndex(32)
    store.build(np.arange(200, dtype=np.int64), v)
    got = [r for r, _ in store.search(q, 10)]
    want = list(np.argsort(-(v @ q))[:10])
    assert got == want


def test_save_load_round_trip_returns_same_hits(settings, embedder, index_data):
    loaded = load_index(settings.index_dir, expected_manifest(settings, embedder))
    assert [c.chunk_id for c in loaded.chunks] == [c.chunk_id for c in index_data.chunks]
    q = embedder.embed_query("Cohere data centres")
    assert loaded.vectors.search(q, 3) == index_data.vectors.search(q, 3)
    assert set(loaded.documents) == {"openai-deal", "cohere-mou", "skills-plan"}
    m = loaded.manifest
    assert m["chunk_count"] == len(loaded.chunks) and m["embedding_dim"] == embedder.dim
    assert {"format_version", "corpus_hash", "chunking_hash", "built_at", "versions"} <= set(m)


def test_missing_and_stale_index_name_the_fix(settings, embedder, tmp_path):
    with pytest.raises(IndexMissingError, match="python -m rag index"):
        open_index(settings, embedder)
    build_index(settings, embedder, progress=False)
    (settings.corpus_dir / "skills-plan.md").write_text("---\ntitle: x\n---\nChanged text.\n")
    with pytest.raises(IndexStaleError, match="corpus"):
        open_index(settings, embedder)
    fresh = open_index(settings, embedder, rebuild=True)
    assert any("Changed text" in c.text for c in fresh.chunks)
    open_index(settings, embedder)  # no longer stale


def test_interrupted_build_leaves_previous_index_usable(settings, embedder, index_data, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(FaissIndex, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        build_index(settings, embedder, progress=False)
    monkeypatch.undo()
    again = load_index(settings.index_dir, expected_manifest(settings, embedder))
    assert len(again.chunks) == len(index_data.chunks)


# --- crash safety and two writers (issue 9) ------------------------------------------------


def test_a_corpus_file_added_during_a_build_leaves_the_saved_index_stale(settings, embedder):
    """The build hashes the files it reads, not the files on disk when it saves: a file added while
    it embeds is not in the index, so the index must read as stale, not as fresh without it."""
    from tests.fakes import HashEmbedder

    class AddingEmbedder(HashEmbedder):
        def embed_documents(self, texts, progress=False):
            (settings.corpus_dir / "harbour.md").write_text("# Harbour\n\nThe harbour cranes plan is new.\n")
            return super().embed_documents(texts, progress)

    built = build_index(settings, AddingEmbedder(), progress=False)
    assert "harbour" not in built.documents
    with pytest.raises(IndexStaleError, match="corpus"):
        open_index(settings, embedder)
    assert "harbour" in open_index(settings, embedder, rebuild=True).documents


def test_rag_index_waits_for_the_write_lock_before_saving(settings, embedder, index_data):
    """Another writer holding `index/.write.lock` (an upload being saved) keeps a rebuild from saving."""
    import fcntl
    import threading

    current = settings.index_dir / "CURRENT"
    before = current.read_text()
    with open(settings.index_dir / ".write.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        rebuild = threading.Thread(target=build_index, args=(settings, embedder), kwargs={"progress": False})
        rebuild.start()
        rebuild.join(1.5)
        assert rebuild.is_alive() and current.read_text() == before
        fcntl.flock(held, fcntl.LOCK_UN)
    rebuild.join(30)
    assert not rebuild.is_alive() and current.read_text() != before
    load_index(settings.index_dir, expected_manifest(settings, embedder))


def test_cleanup_keeps_builds_another_writer_may_be_using(settings, index_data):
    """Saving drops old builds and stale `.tmp-*` folders, but not a fresh `.tmp-*` (another writer's,
    in progress) nor a build newer than its own (another writer's, about to be named by `CURRENT`)."""
    import time

    from rag.index import TMP_KEEP_SECONDS, save_index

    builds = settings.index_dir / "builds"
    first = builds / (settings.index_dir / "CURRENT").read_text().strip()
    made = {}
    for name in (".tmp-29991231T000000-1-1", "29991231T000000-1-2", ".tmp-20000101T000000-1-3", "20000101T000000-1-4"):
        (builds / name).mkdir()
        (builds / name / "chunks.jsonl").write_text("")
        made[name] = builds / name
    old = time.time() - TMP_KEEP_SECONDS - 60
    os.utime(made[".tmp-20000101T000000-1-3"], (old, old))
    time.sleep(1.1)  # builds started in the same second as a save are kept until the next one
    new = save_index(settings.index_dir, index_data)
    left = {p.name for p in builds.iterdir()}
    assert {new.name, ".tmp-29991231T000000-1-1", "29991231T000000-1-2"} <= left
    assert not {first.name, ".tmp-20000101T000000-1-3", "20000101T000000-1-4"} & left


def test_save_fsyncs_every_file_the_build_folder_and_the_pointer(settings, index_data, monkeypatch):
    from rag.index import save_index

    synced: list[str] = []
    real = os.fsync

    def recording(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    build = save_index(settings.index_dir, index_data)
    tmp = build.parent / f".tmp-{build.name}"
    files = {str(tmp / p.relative_to(build)) for p in build.rglob("*")}  # files and sub-folders
    assert any("/keywords/" in f for f in files)
    assert files <= set(synced), files - set(synced)
    assert str(tmp) in synced  # the build folder, before its rename
    assert str(build.parent) in synced  # the rename itself
    assert str(settings.index_dir / ".CURRENT.tmp") in synced  # the pointer, before its rename
    assert synced[-1] == str(settings.index_dir)  # the pointer's rename, before old builds go


def _damage(path, how: str) -> None:
    """Truncate `path` to half, or flip one bit so it still parses: in the vector data near the end of
    a FAISS file, or the case of a letter inside a JSON string value."""
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
        return
    i, bit = len(data) - 20, 0x01
    if path.suffix == ".jsonl":
        i, bit = data.index(b'": "', len(data) // 2) + 4, 0x20
        while not chr(data[i]).isalpha():
            i += 1
    path.write_bytes(data[:i] + bytes([data[i] ^ bit]) + data[i + 1 :])


@pytest.mark.parametrize("how", ["truncate", "flip"])
@pytest.mark.parametrize("name", ["vectors.faiss", "chunks.jsonl", "documents.jsonl"])
def test_a_damaged_index_file_is_reported_or_rebuilt_never_used(settings, embedder, index_data, name, how):
    build = settings.index_dir / "builds" / (settings.index_dir / "CURRENT").read_text().strip()
    assert set(load_index(settings.index_dir).manifest["files"]) >= {"vectors.faiss", "chunks.jsonl", "documents.jsonl"}
    _damage(build / name, how)
    with pytest.raises(IndexMissingError, match=r"damaged.*python -m rag index"):
        load_index(settings.index_dir)
    with pytest.raises(IndexMissingError, match=name.replace(".", r"\.")):
        open_index(settings, embedder)
    rebuilt = open_index(settings, embedder, rebuild=True)
    assert [c.chunk_id for c in rebuilt.chunks] == [c.chunk_id for c in index_data.chunks]
    assert [c.text for c in load_index(settings.index_dir).chunks] == [c.text for c in index_data.chunks]
