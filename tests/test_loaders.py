import logging

import pytest

from rag import loaders
from rag.errors import DocumentError
from rag.loaders import load_corpus, load_document, load_untrusted, split_front_matter


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


def alias_bomb(levels: int = 8, width: int = 9) -> str:
    """The "billion laughs" as front matter: under 400 bytes whose title expands to `width**levels` strings."""
    lines = ["a0: &a0 [" + ",".join(['"x"'] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "---\n" + "\n".join(lines) + f"\ntitle: *a{levels - 1}\n---\nText.\n"


def test_front_matter_with_yaml_aliases_is_refused(tmp_path):
    (tmp_path / "bomb.md").write_text(alias_bomb())
    assert (tmp_path / "bomb.md").stat().st_size < 400
    refused = r"bomb.md: its front matter uses YAML aliases \(&/\*\), which are not accepted"
    with pytest.raises(DocumentError, match=refused):
        load_document(tmp_path / "bomb.md")
    with pytest.raises(DocumentError, match=refused):
        load_untrusted(tmp_path / "bomb.md")  # an upload: Markdown is read in the server's own process
    with pytest.raises(DocumentError, match="aliases"):
        split_front_matter("---\nbase: &b x\ntitle: other\n---\nBody")  # an anchor alone is refused too
    ordinary = "---\ntitle: Q&A on *AI*\npublisher: 'R&D'\ntags: [a, b]\n---\nBody"
    assert split_front_matter(ordinary) == ({"title": "Q&A on *AI*", "publisher": "R&D", "tags": ["a", "b"]}, "Body")


def test_the_untrusted_reader_has_a_memory_cap(tmp_path, monkeypatch):
    import zipfile

    import docx

    monkeypatch.setattr(loaders, "READER_MAX_BYTES", 1024**3 // 4)  # the parsers import in about 150 MB of it
    docx.Document().save(tmp_path / "empty.docx")
    paragraph = b"<w:p><w:r><w:t>" + b"x" * 190_000_000 + b"</w:t></w:r></w:p></w:body>"  # under the unpacked limit
    with zipfile.ZipFile(tmp_path / "empty.docx") as src, zipfile.ZipFile(tmp_path / "huge.docx", "w") as z:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "word/document.xml":
                data = data.replace(b"</w:body>", paragraph, 1)
            z.writestr(item.filename, data, zipfile.ZIP_DEFLATED, compresslevel=1)
    assert (tmp_path / "huge.docx").stat().st_size < 1_000_000
    with pytest.raises(DocumentError, match=r"huge.docx: needs more than 0.25 GB of memory to read, so it was stopped"):
        load_untrusted(tmp_path / "huge.docx")
