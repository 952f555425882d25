import pytest

from rag.errors import BadInputError
from rag.settings import Settings


def test_environment_overrides_and_bad_values_read_clearly(monkeypatch):
    monkeypatch.setenv("RAG_TOP_K", "8")
    assert Settings.load().top_k == 8
    monkeypatch.setenv("RAG_TOP_K", "abc")
    with pytest.raises(BadInputError, match="RAG_TOP_K: Input should be a valid integer"):
        Settings.load()


def test_unknown_fields_are_rejected():
    with pytest.raises(BadInputError, match="RAG_NOT_A_SETTING"):
        Settings.load(not_a_setting=1)


def test_constructors_take_their_defaults_from_settings():
    import inspect

    from rag.chunking import chunk_corpus, chunk_document
    from rag.citations import CitationChecker
    from rag.pipeline import PipelineOptions

    s = Settings()
    assert CitationChecker(None).threshold == s.support_threshold == 0.5
    for fn in (chunk_document, chunk_corpus):
        params = inspect.signature(fn).parameters
        assert (params["size"].default, params["overlap"].default) == (s.chunk_size, s.chunk_overlap) == (500, 100)
    options = PipelineOptions()
    for name in ("top_k", "min_relevance", "refusal_min_p", "focus_query", "demonstrations", "follow_up_fusion"):
        assert getattr(options, name) == getattr(s, name), name
    assert PipelineOptions.from_settings(s).decision.key_passage == s.key_passage
    assert s.refusal_min_p == 0.35


def test_keys_are_secret_in_reprs_and_logs(monkeypatch):
    monkeypatch.setenv("RAG_API_KEYS", "sk-alpha, sk-beta")
    monkeypatch.setenv("RAG_ADMIN_KEYS", "sk-admin")
    monkeypatch.setenv("RAG_OPENAI_API_KEY", "sk-upstream")
    s = Settings.load()
    assert s.api_key_set() == {"sk-alpha", "sk-beta"} and s.openai_api_key.get_secret_value() == "sk-upstream"
    shown = repr(s) + str(s) + s.model_dump_json()
    assert not any(k in shown for k in ("sk-alpha", "sk-beta", "sk-admin", "sk-upstream"))


def test_the_milvus_token_is_secret():
    s = Settings(milvus_token="s3cret")
    assert "s3cret" not in repr(s) + str(s) + s.model_dump_json()
    assert s.milvus_token.get_secret_value() == "s3cret"


def test_a_rate_limit_of_zero_is_refused():
    with pytest.raises(BadInputError, match='RAG_RATE_LIMIT: Value error, "0/minute" would refuse every request'):
        Settings.load(rate_limit="0/minute")
    with pytest.raises(BadInputError, match="RAG_RATE_LIMIT"):
        Settings.load(rate_limit="000/second")
    assert Settings.load(rate_limit="1/second").rate_limit == "1/second"
    assert Settings.load(rate_limit="").rate_limit == ""


def test_milvus_deployment_settings_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("RAG_MILVUS_INDEX", "hnsw")
    monkeypatch.setenv("RAG_MILVUS_DB_NAME", "policy")
    monkeypatch.setenv("RAG_MILVUS_CA", "/etc/milvus/ca.pem")
    monkeypatch.setenv("RAG_TEST_MILVUS_URI", "http://localhost:19530")  # the tests' variable is not a setting
    s = Settings.load()
    assert (s.milvus_index, s.milvus_db_name, s.milvus_ca) == ("hnsw", "policy", "/etc/milvus/ca.pem")
    monkeypatch.setenv("RAG_MILVUS_INDEX", "diskann")
    with pytest.raises(BadInputError, match="RAG_MILVUS_INDEX: Input should be 'auto', 'flat', 'ivf_flat', 'hnsw'"):
        Settings.load()
    monkeypatch.delenv("RAG_MILVUS_INDEX")
    assert Settings.load().milvus_index == "auto"
