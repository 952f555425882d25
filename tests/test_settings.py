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


def test_keys_are_secret_in_reprs_and_logs(monkeypatch):
    monkeypatch.setenv("RAG_API_KEYS", "sk-alpha, sk-beta")
    monkeypatch.setenv("RAG_ADMIN_KEYS", "sk-admin")
    monkeypatch.setenv("RAG_OPENAI_API_KEY", "sk-upstream")
    s = Settings.load()
    assert s.api_key_set() == {"sk-alpha", "sk-beta"} and s.openai_api_key.get_secret_value() == "sk-upstream"
    shown = repr(s) + str(s) + s.model_dump_json()
    assert not any(k in shown for k in ("sk-alpha", "sk-beta", "sk-admin", "sk-upstream"))
