"""The eval and batch subcommands: argument handling and one-line errors (no model is loaded here)."""

from __future__ import annotations

import json

import pytest

from rag.cli import main
from tests.evaluation.conftest import TINY_SET


def test_compare_prints_a_metric_table(tmp_path, capsys):
    for name, mrr in (("a", 0.5), ("b", 0.75)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"n": 4, "mrr": mrr}), encoding="utf-8")
    assert main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "| metric |" in out and "| mrr | 0.500 | 0.750 | +0.250 |" in out


def test_compare_without_a_summary_is_one_line(tmp_path, capsys):
    assert main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "summary.json does not exist" in err and err.count("\n") == 1


def test_check_validates_a_set(tmp_path, settings, monkeypatch, capsys):
    monkeypatch.setenv("RAG_CORPUS_DIR", str(settings.corpus_dir))
    good = tmp_path / "qa.jsonl"
    good.write_text("".join(json.dumps(d) + "\n" for d in TINY_SET), encoding="utf-8")
    assert main(["eval", "--check", "--questions", str(good)]) == 1  # valid, but far too small
    out = capsys.readouterr().out
    assert "items: 5" in out and "coverage: 120 items needed, 5 found" in out

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**TINY_SET[0], "split": "train"}) + "\n", encoding="utf-8")
    assert main(["eval", "--check", "--questions", str(bad)]) == 1
    assert "q1: split 'train' is not one of dev, test" in capsys.readouterr().out


def test_bad_eval_input_is_one_line_not_a_traceback(tmp_path, settings, monkeypatch, capsys):
    monkeypatch.setenv("RAG_CORPUS_DIR", str(settings.corpus_dir))
    bad = tmp_path / "qa.jsonl"
    bad.write_text(json.dumps(TINY_SET[0]) + "\nnot json\n", encoding="utf-8")
    assert main(["eval", "--questions", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}:2: not valid JSON") and "Traceback" not in err and err.count("\n") == 1


def test_bad_batch_input_is_one_line_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "fine?"}\n{"id": 3}\n', encoding="utf-8")
    assert main(["batch", "--questions", str(bad), "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err == f'error: {bad}:2: "question" is missing, blank or not a string\n'


def test_eval_needs_an_out_folder(capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "--questions", "x.jsonl"])
    assert e.value.code == 2
    assert "--out DIR is needed" in capsys.readouterr().err
