from rag.chunking import chunk_document, embedding_text, parse_blocks
from rag.types import Document

BODY = """# Title

Intro paragraph one.

## Section A

Para A1 is here.
- item one
- item two

### Sub A.1

Deep text.

## Section B

""" + " ".join(f"Sentence {i} is about the budget." for i in range(60))


def doc() -> Document:
    return Document(doc_id="d", title="T", body=BODY, source_url="u")


def test_blocks_follow_headings_and_keep_lists_with_their_paragraph():
    blocks = [b for b in parse_blocks(BODY) if b.kind != "heading"]
    texts = [BODY[b.start : b.end] for b in blocks]
    assert texts[0] == "Intro paragraph one."
    assert texts[1] == "Para A1 is here.\n- item one\n- item two"
    assert blocks[2].heading_path == ("Title", "Section A", "Sub A.1")


def test_offsets_point_back_into_the_body_and_sections_are_not_mixed():
    chunks = chunk_document(doc(), size=200, overlap=20)
    for c in chunks:
        assert BODY[c.start : c.end] == c.text
        assert len(c.text) <= 200
    paths = [tuple(c.heading_path) for c in chunks]
    assert ("Title", "Section A", "Sub A.1") in paths
    # the long section B paragraph was split on sentence ends into several chunks
    b_chunks = [c for c in chunks if c.heading_path[-1] == "Section B"]
    assert len(b_chunks) >= 10
    assert all(c.text.rstrip().endswith(".") for c in b_chunks)
    assert [c.chunk_id for c in chunks] == [f"d#{i:04d}" for i in range(len(chunks))]


def test_embedding_text_carries_title_and_headings():
    c = chunk_document(doc(), size=200, overlap=20)[1]
    assert embedding_text(c).startswith("T > Title > Section A\n")
