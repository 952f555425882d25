"""The keyword index on disk: saved, opened memory-mapped, extended and shrunk in segments, always
scoring as rank-bm25 over the live passages."""

import os

import numpy as np
import pytest

from rag import keywords
from rag.keywords import KeywordIndex
from rag.lexical import BM25Index

WORDS = ["data", "centre", "cohere", "openai", "skills", "plan", "london", "canada", "growth", "zone", "ai"]
QUERIES = ["data centres in Canada", "AI growth zone", "OpenAI London skills", "ai ai data", "nothing matches"]


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(n)]


def assert_same_as_rank_bm25(idx: KeywordIndex, keys: list[int], texts: list[str], k: int = 15) -> None:
    ref = BM25Index(texts)
    for q in QUERIES:
        got = idx.search(q, k)
        want = [(keys[row], score) for row, score in ref.search(q, k)]
        assert [key for key, _ in got] == [key for key, _ in want], q
        assert np.allclose([s for _, s in got], [s for _, s in want]), q


def saved(idx: KeywordIndex, folder) -> KeywordIndex:
    """Save as `save_index` does (write, then the folder is final) and open it again."""
    meta = idx.save(folder)
    idx.saved(folder, meta["files"])
    return KeywordIndex.open(folder / keywords.FOLDER, meta["files"])


def test_a_saved_index_opens_memory_mapped_and_scores_the_same(tmp_path):
    texts = corpus(300)
    idx = KeywordIndex()
    idx.add(list(range(300)), texts)
    opened = saved(idx, tmp_path / "b1")
    assert len(opened) == 300
    assert all(isinstance(s.slots, np.memmap) for s in opened.segments)  # postings are not read into memory
    for q in QUERIES:
        assert opened.search(q, 20) == idx.search(q, 20)
    assert_same_as_rank_bm25(opened, list(range(300)), texts)


def test_an_upload_adds_a_segment_and_links_the_old_one_instead_of_writing_it(tmp_path):
    texts = corpus(260)
    idx = KeywordIndex()
    idx.add(list(range(250)), texts[:250])
    first = saved(idx, tmp_path / "b1")
    first.add(list(range(250, 260)), texts[250:])
    meta = first.save(tmp_path / "b2")
    old, new = (tmp_path / "b1" / "keywords"), (tmp_path / "b2" / "keywords")
    assert meta["segments"] == 2
    assert os.stat(old / "seg-000001" / "slots.npy").st_ino == os.stat(new / "seg-000001" / "slots.npy").st_ino
    assert (new / "seg-000002" / "slots.npy").is_file()
    first.saved(tmp_path / "b2", meta["files"])
    again = KeywordIndex.open(new, meta["files"])
    assert_same_as_rank_bm25(again, list(range(260)), texts)


def test_removed_passages_stay_removed_after_a_save_and_the_scores_are_those_of_what_is_left(tmp_path):
    texts = corpus(200)
    idx = KeywordIndex()
    idx.add(list(range(150)), texts[:150])
    idx.add(list(range(150, 200)), texts[150:])
    gone = set(range(40, 60)) | {170, 171}
    idx.remove(sorted(gone))
    kept = [i for i in range(200) if i not in gone]
    reopened = saved(idx, tmp_path / "b1")
    assert len(reopened) == len(kept) == 178
    assert_same_as_rank_bm25(reopened, kept, [texts[i] for i in kept])
    assert reopened.doc_freq == dict(BM25Index([texts[i] for i in kept]).doc_freq)


def test_replacing_a_key_keeps_one_copy_and_ranks_the_new_text():
    idx = KeywordIndex()
    idx.add([1, 2, 3], ["data centres", "skills plan", "london"])
    idx.add([1], ["growth zone"])
    assert len(idx) == 3
    assert idx.search("data", 5) == [] and [k for k, _ in idx.search("growth", 5)] == [1]


def test_many_uploads_merge_the_small_segments_and_keep_exact_scores(tmp_path):
    texts = corpus(240)
    idx = KeywordIndex()
    idx.add(list(range(200)), texts[:200])
    for start in range(200, 240, 4):  # ten small uploads
        idx.add(list(range(start, start + 4)), texts[start : start + 4])
        idx.remove([start - 100])
    assert len(idx.segments) <= keywords.MAX_SEGMENTS
    assert idx.segments[0].size == 200  # the large segment is never rewritten by an upload
    kept = [i for i in range(240) if i not in range(100, 140, 4)]
    assert len(idx) == len(kept)
    assert_same_as_rank_bm25(idx, kept, [texts[i] for i in kept])
    assert_same_as_rank_bm25(saved(idx, tmp_path / "b1"), kept, [texts[i] for i in kept])


def test_a_damaged_segment_is_reported_not_used(tmp_path):
    idx = KeywordIndex()
    idx.add([1, 2, 3], ["data centres", "skills plan", "growth zone"])
    idx.save(tmp_path)
    (tmp_path / "keywords" / "seg-000001" / "terms.json").write_text('["data"]')
    with pytest.raises(ValueError, match="inconsistent"):
        KeywordIndex.open(tmp_path / "keywords")


def test_an_upload_saves_only_its_own_segment_and_a_restart_opens_what_was_saved(settings, embedder, index_data):
    from rag.index import load_index, read_manifest
    from rag.library import DocumentLibrary
    from rag.retrieval import HybridRetriever

    first, _ = read_manifest(settings.index_dir)
    corpus_segment = first / "keywords" / "seg-000001" / "slots.npy"
    inode = os.stat(corpus_segment).st_ino
    lib = DocumentLibrary(HybridRetriever(index_data, embedder), settings)
    lib.add("harbour note.md", b"# Harbour note\n\nThe zephyr harbour cranes were funded in May.\n")
    second, manifest = read_manifest(settings.index_dir)
    assert second != first and manifest["keywords"]["segments"] == 2
    assert os.stat(second / "keywords" / "seg-000001" / "slots.npy").st_ino == inode  # linked, not rewritten
    restarted = HybridRetriever(load_index(settings.index_dir), embedder)
    assert restarted.data.keywords is not None and len(restarted.data.keywords) == len(restarted.chunks)
    hit = restarted.retrieve("zephyr harbour cranes", 1).hits[0]
    assert hit.chunk.doc_id == "harbour-note" and hit.lexical_rank == 1
    assert restarted.document_frequency("zephyr") == 1  # the document counts were saved too

    lib.remove("harbour-note")
    again = HybridRetriever(load_index(settings.index_dir), embedder)
    assert all(h.chunk.doc_id != "harbour-note" for h in again.retrieve("zephyr harbour cranes", 5).hits)
    assert again.data.keywords.search("zephyr harbour cranes", 5) == [] and again.document_frequency("zephyr") == 0
