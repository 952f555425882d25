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
