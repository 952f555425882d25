import logging

import pytest

from rag.errors import DocumentError
from rag.loaders import load_corpus, load_document, split_front_matter


def test_front_matter():
    assert split_front_matter("---\ntitle: A\n---\nBody") == ({"title": "A"}, "Body")
    assert split_front_matter("No front matter") == ({}, "No front matter")


def test_formats(tmp_path):
    (tmp_path / "a.txt").write_text("Plain text here.")
    (tmp_path / "b.html").write_text(
        "<html><title>HT</title><body><h2>Head</h2><p>Para <b>bold</b>.</p><script>x()</script></body></html>"
    )
    import docx

    d = docx.Document()
    d.add_heading("Doc head", level=1)
    d.add_paragraph("Docx body text.")
    d.save(tmp_path / "c.docx")
    assert load_document(tmp_path / "a.txt").body == "Plain text here."
    h = load_document(tmp_path / "b.html")
    assert h.title == "HT" and h.body == "## Head\n\nPara bold ." and "x()" not in h.body
    c = load_document(tmp_path / "c.docx")
    assert c.body == "# Doc head\n\nDocx body text."


def test_pdf(tmp_path):
    from pypdf import PdfWriter

    w = PdfWriter()
    w.add_blank_page(200, 200)
    w.write(tmp_path / "blank.pdf")
    with pytest.raises(DocumentError, match="holds no text"):
        load_document(tmp_path / "blank.pdf")


def test_bad_files_are_skipped_with_a_warning(tmp_path, caplog):
    (tmp_path / "good.md").write_text("---\ntitle: Good\n---\nText.")
    (tmp_path / "bad.md").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 nonsense")
    with caplog.at_level(logging.WARNING):
        docs = load_corpus(tmp_path)
    assert [d.doc_id for d in docs] == ["good"]
    log = caplog.text
    assert "bad.md: not valid UTF-8" in log and "image.png: unsupported file type .png" in log
    assert "broken.pdf: could not be read" in log


def test_real_corpus_metadata():
    from pathlib import Path

    docs = {d.doc_id: d for d in load_corpus(Path(__file__).parent.parent / "corpus")}
    assert len(docs) == 29
    mou = docs["mou-uk-openai"]
    assert mou.publisher == "Department for Science, Innovation and Technology" and mou.date == "2025-07-21"
    assert mou.source_url.startswith("https://www.gov.uk/") and not mou.body.startswith("---")


def test_zip_bombs_and_huge_pdfs_are_refused_before_parsing(tmp_path, monkeypatch):
    import zipfile

    import docx
    from pypdf import PdfWriter

    from rag import loaders

    monkeypatch.setattr(loaders, "MAX_DOCX_UNPACKED_BYTES", 1_000_000)
    monkeypatch.setattr(loaders, "MAX_PDF_PAGES", 3)
    d = docx.Document()
    d.add_paragraph("Small text.")
    d.save(tmp_path / "bomb.docx")
    with zipfile.ZipFile(tmp_path / "bomb.docx", "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/padding.bin", b"\0" * 2_000_000)  # a few kB packed, 2 MB unpacked
    assert (tmp_path / "bomb.docx").stat().st_size < 100_000
    with pytest.raises(DocumentError, match=r"bomb.docx: unpacks to \d+ MB, over the limit of 1 MB"):
        load_document(tmp_path / "bomb.docx")

    w = PdfWriter()
    for _ in range(4):
        w.add_blank_page(width=200, height=200)
    with open(tmp_path / "long.pdf", "wb") as f:
        w.write(f)
    with pytest.raises(DocumentError, match="long.pdf: has 4 pages; the limit is 3"):
        load_document(tmp_path / "long.pdf")
