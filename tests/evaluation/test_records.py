"""Result files: resume from what is there, repair a half-written last line, refuse damage elsewhere."""

from __future__ import annotations

import pytest

from rag.errors import BadInputError
from rag.evaluation.records import append_record, done_keys, read_records


def test_missing_file_has_no_records(tmp_path):
    assert read_records(tmp_path / "none.jsonl") == []


def test_append_then_read_round_trip(tmp_path):
    path = tmp_path / "r.jsonl"
    with open(path, "a", encoding="utf-8") as f:
        append_record(f, {"id": "a", "x": "é"})
        append_record(f, {"id": 2})
    assert read_records(path) == [{"id": "a", "x": "é"}, {"id": 2}]
    assert done_keys(read_records(path)) == {"a", "2"}


def test_half_written_last_line_is_dropped_from_the_file(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a"}\n\n{"id": "b"}\n{"id": "c", "sco', encoding="utf-8")
    assert read_records(path) == [{"id": "a"}, {"id": "b"}]
    assert path.read_text(encoding="utf-8") == '{"id": "a"}\n\n{"id": "b"}\n'
    with open(path, "a", encoding="utf-8") as f:
        append_record(f, {"id": "c"})
    assert [r["id"] for r in read_records(path)] == ["a", "b", "c"]


def test_complete_last_line_without_newline_gets_one(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a"}', encoding="utf-8")
    assert read_records(path) == [{"id": "a"}]
    with open(path, "a", encoding="utf-8") as f:
        append_record(f, {"id": "b"})
    assert [r["id"] for r in read_records(path)] == ["a", "b"]


def test_damaged_line_in_the_middle_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a"}\n[1, 2]\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(BadInputError, match=r"r\.jsonl:2: not a result record"):
        read_records(path)
