"""The Milvus index plan: the type by size or setting, its parameters, the fallbacks, the manifest record."""

import pytest

from rag.stores.milvus_plan import EXACT_MAX, IndexPlan, fallback, nlist_for, plan_index

LITE_REFUSAL = "invalid index type: HNSW, local mode only support FLAT IVF_FLAT AUTOINDEX"


def test_auto_is_exact_up_to_the_threshold_then_ivf_with_about_4_sqrt_n_lists():
    small = plan_index(EXACT_MAX)
    assert (small.index_type, small.params, small.search) == ("FLAT", {}, {})
    big = plan_index(EXACT_MAX + 1)
    assert big.index_type == "IVF_FLAT" and big.params == {"nlist": 1264} and big.search == {"nprobe": 32}
    assert plan_index(1_000_000).params == {"nlist": 4000}
    assert "100,000" in big.reason and big.requested == "auto"
    assert (nlist_for(0), nlist_for(10), nlist_for(10_000), nlist_for(10**12)) == (1, 10, 400, 65_536)  # Milvus' range


def test_a_requested_type_is_used_at_any_size_with_its_parameters():
    hnsw = plan_index(10, "hnsw")
    assert (hnsw.index_type, hnsw.params, hnsw.search) == ("HNSW", {"M": 32, "efConstruction": 80}, {"ef": 128})
    assert plan_index(10, "ivf_flat").params == {"nlist": 10} and plan_index(10, "ivf_flat").search == {"nprobe": 10}
    assert plan_index(10**6, "flat").index_type == "FLAT"
    auto = plan_index(10**6, "autoindex")
    assert (auto.index_type, auto.params, auto.search, auto.reason) == (
        "AUTOINDEX",
        {},
        {},
        "RAG_MILVUS_INDEX=autoindex",
    )
    with pytest.raises(ValueError, match="unknown Milvus index type 'diskann'"):
        plan_index(10, "diskann")


def test_search_params_carry_the_index_knob_and_hnsw_ef_is_at_least_k():
    assert plan_index(10).search_params(5) == {"metric_type": "IP", "params": {}}
    assert plan_index(10**6).search_params(5) == {"metric_type": "IP", "params": {"nprobe": 32}}
    hnsw = plan_index(10, "hnsw")
    assert hnsw.search_params(5)["params"] == {"ef": 128}
    assert hnsw.search_params(500)["params"] == {"ef": 500}  # Milvus refuses ef < limit
    assert hnsw.search == {"ef": 128}  # the plan itself is unchanged


def test_refused_types_fall_back_by_size_then_to_flat_and_say_why():
    small = fallback(plan_index(10, "hnsw"), 10, LITE_REFUSAL)
    assert small.index_type == "FLAT" and small.requested == "hnsw"
    assert small.fallback == f"the engine refused HNSW ({LITE_REFUSAL})"
    big = fallback(plan_index(10**6, "hnsw"), 10**6, LITE_REFUSAL)
    assert big.index_type == "IVF_FLAT" and big.params == {"nlist": 4000} and "refused HNSW" in big.reason
    assert fallback(plan_index(10**6, "autoindex"), 10**6, "no").index_type == "IVF_FLAT"
    twice = fallback(big, 10**6, "invalid index type: IVF_FLAT")
    assert twice.index_type == "FLAT" and "refused HNSW" in twice.fallback and "refused IVF_FLAT" in twice.fallback
    assert fallback(plan_index(10), 10, "invalid index type: FLAT") is None


def test_the_manifest_record_reads_back_and_an_old_manifest_means_flat():
    for plan in (plan_index(10**6), plan_index(10, "hnsw"), fallback(plan_index(10, "hnsw"), 10, LITE_REFUSAL)):
        assert IndexPlan.from_record(plan.record()) == plan
    assert "index_fallback" not in plan_index(10).record()
    old = IndexPlan.from_record({"kind": "milvus", "collection": "c", "index": "FLAT", "keyword": True})
    assert (old.index_type, old.search_params(3)) == ("FLAT", {"metric_type": "IP", "params": {}})
