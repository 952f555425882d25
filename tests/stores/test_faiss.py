import numpy as np
import pytest

from rag.stores.faiss import EXACT_MAX, FaissIndex, choose_index


def clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors around 20 centres, so approximate indexes have structure to find."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    v = centres[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def brute_force(v: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return [int(ids[i]) for i in np.argsort(-(v @ q), kind="stable")[:k]]


def test_flat_top_k_equals_brute_force_with_chunk_ids():
    v = clustered(200)
    ids = np.arange(1000, 1200, dtype=np.int64) * 7919
    q = v[17] + 0.1 * np.random.default_rng(1).normal(size=32).astype(np.float32)
    store = FaissIndex(32, "flat")
    store.build(ids, v)
    assert [i for i, _ in store.search(q, 10)] == brute_force(v, ids, q, 10)
    assert store.index_type == "flat" and len(store) == 200


@pytest.mark.parametrize("index_type", ["hnsw", "ivf_flat"])
def test_approximate_indexes_find_most_of_the_exact_top_10(index_type):
    v = clustered(3000)
    ids = np.arange(3000, dtype=np.int64)
    store = FaissIndex(32, index_type)
    store.build(ids, v)
    assert store.index_type == index_type
    rng = np.random.default_rng(2)
    found = 0
    for qi in rng.integers(0, 3000, 20):
        q = v[qi] + 0.05 * rng.normal(size=32).astype(np.float32)
        found += len({i for i, _ in store.search(q, 10)} & set(brute_force(v, ids, q, 10)))
    assert found / 200 >= 0.9


def test_auto_picks_exact_up_to_the_measured_threshold():
    assert choose_index(10) == "flat" and choose_index(EXACT_MAX) == "flat"
    assert choose_index(EXACT_MAX + 1) == "ivf_flat"
    store = FaissIndex(32)  # "auto"
    store.build(np.arange(50, dtype=np.int64), clustered(50))
    assert store.index_type == "flat"


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf_flat"])
def test_add_delete_and_save_load_round_trip(tmp_path, index_type):
    v = clustered(400)
    ids = np.arange(400, dtype=np.int64) + 10
    store = FaissIndex(32, index_type)
    store.build(ids[:300], v[:300])
    store.add(ids[300:], v[300:])
    assert store.search(v[350], 1)[0][0] == 360
    store.delete([360, 11])
    assert len(store) == 398
    hits = store.search(v[350], 5)
    assert 360 not in {i for i, _ in hits} and len(hits) == 5
    store.save(tmp_path)
    loaded = FaissIndex.load(tmp_path, {"index": index_type})
    assert loaded.index_type == index_type and len(loaded) == 398
    for qi in (0, 1, 200, 350):
        assert loaded.search(v[qi], 5) == store.search(v[qi], 5)


def test_empty_store_searches_as_no_hits():
    store = FaissIndex(8, "flat")
    store.build(np.zeros(0, dtype=np.int64), np.zeros((0, 8), np.float32))
    assert store.search(np.ones(8, np.float32), 3) == [] and len(store) == 0


def test_auto_switches_to_ivf_above_the_threshold_and_the_manifest_says_so(monkeypatch, tmp_path, settings, embedder):
    from rag.indexing import build_index
    from rag.stores import faiss as faiss_mod

    assert build_index(settings, embedder, progress=False).manifest["vector_store"]["index"] == "flat"
    monkeypatch.setattr(faiss_mod, "EXACT_MAX", 100)
    store = FaissIndex(32)
    store.build(np.arange(500, dtype=np.int64), clustered(500))
    assert store.index_type == "ivf_flat"
    info = store.save(tmp_path)
    assert {k: info[k] for k in ("kind", "index", "requested", "vectors")} == {
        "kind": "faiss",
        "index": "ivf_flat",
        "requested": "auto",
        "vectors": 500,
    }
    assert FaissIndex.load(tmp_path, {"index": "ivf_flat"}).search(clustered(500)[7], 1)[0][0] == 7


def test_an_auto_index_grown_past_exact_max_is_saved_as_ivf_and_back(tmp_path, monkeypatch):
    """Uploads add to the index in place; the save that writes everything picks the type for its size."""
    import rag.stores.faiss as faiss_store

    monkeypatch.setattr(faiss_store, "EXACT_MAX", 500)
    v = clustered(2000)
    ids = np.arange(2000, dtype=np.int64) * 31
    store = FaissIndex(32, "auto")
    store.build(ids[:400], v[:400])
    assert store.index_type == "flat"
    store.add(ids[400:], v[400:])
    info = store.save(tmp_path)
    assert info["index"] == "ivf_flat" and info["requested"] == "auto"
    loaded = FaissIndex.load(tmp_path, info)
    assert loaded.index_type == "ivf_flat" and loaded.requested == "auto" and len(loaded) == 2000
    assert [i for i, _ in loaded.search(v[1234], 1)] == [int(ids[1234])]
    loaded.delete([int(i) for i in ids[300:]])  # shrinks below EXACT_MAX: exact again
    info = loaded.save(tmp_path)
    assert info["index"] == "flat" and len(FaissIndex.load(tmp_path, info)) == 300
    assert [i for i, _ in loaded.search(v[42], 1)] == [int(ids[42])]


@pytest.mark.parametrize(("index_type", "knob"), [("ivf_flat", "nprobe"), ("hnsw", "ef_search")])
def test_the_search_knob_is_the_smallest_reaching_the_recall_target_and_is_kept(tmp_path, index_type, knob):
    from rag.stores.faiss import EF_SEARCHES, NPROBES, RECALL_TARGET, calibration_queries, exact_top

    values = NPROBES if knob == "nprobe" else EF_SEARCHES
    rng = np.random.default_rng(3)  # no clusters: IVF needs several lists probed to find the top 10
    v = rng.normal(size=(5000, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = np.arange(5000, dtype=np.int64) + 10
    store = FaissIndex(32, index_type)
    store.build(ids, v)
    chosen = getattr(store, knob)
    assert chosen in values and store.calibrated_recall >= RECALL_TARGET
    q = calibration_queries(v)
    exact = ids[exact_top(v, q)]

    def recall(value: int) -> float:
        setattr(store, knob, value)
        store._tune(store._index, index_type)
        return np.mean([len({i for i, _ in store.search(x, 10)} & set(e)) / 10 for x, e in zip(q, exact, strict=True)])

    assert recall(chosen) >= RECALL_TARGET
    smaller = [p for p in values if p < chosen]
    assert not smaller or recall(smaller[-1]) < RECALL_TARGET  # none smaller would do
    setattr(store, knob, chosen)
    info = store.save(tmp_path)
    assert info[knob] == chosen and info["calibrated_recall_at_10"] == store.calibrated_recall
    loaded = FaissIndex.load(tmp_path, info)
    inner = loaded._faiss.downcast_index(loaded._index.index)
    assert (inner.nprobe if knob == "nprobe" else inner.hnsw.efSearch) == chosen


def test_exact_top_matches_a_full_sort():
    from rag.stores.faiss import exact_top

    v = clustered(700, seed=5)
    q = clustered(7, seed=6)
    got = exact_top(v, q, k=10, block=128)
    want = np.argsort(-(q @ v.T), axis=1, kind="stable")[:, :10]
    assert [sorted(g) for g in got.tolist()] == [sorted(w) for w in want.tolist()]
