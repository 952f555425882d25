"""The chat's HTML pieces: highlighted passages, linked markers, source cards, escaping."""

from __future__ import annotations

from rag.library import DocumentInfo
from rag.serve.render import (
    NOT_FOUND_HTML,
    answer_markdown,
    document_markdown,
    documents_table_html,
    format_date,
    link_markers,
    passage_html,
    safe_url,
    searched_for,
    sources_html,
    turn_record,
)
from rag.types import Answer, Citation, Document, Timings

BODY = "# Title\n\nFirst paragraph.\n\nOpenAI may work with education. It may also <b>defend</b>.\n\nLast one."


def test_passage_html_marks_the_quote_inside_its_paragraph():
    start = BODY.index("OpenAI")
    end = BODY.index("education.") + len("education.")
    out = passage_html(BODY, start, end)
    assert out == "<mark>OpenAI may work with education.</mark> It may also &lt;b&gt;defend&lt;/b&gt;."
    assert "First paragraph" not in out and "Last one" not in out


def test_passage_html_cuts_long_paragraphs_and_shows_list_items_as_bullets():
    body = "word " * 400 + "TARGET here. " + "tail " * 400
    start = body.index("TARGET")
    out = passage_html(body, start, start + 6, context=100)
    assert out.startswith("…") and out.endswith("…") and "<mark>TARGET</mark>" in out and len(out) < 300
    listy = "- first item\n- second item"
    assert passage_html(listy, listy.index("second"), len(listy)) == "• first item<br>• <mark>second item</mark>"


def test_link_markers_escape_and_link():
    out = link_markers("A <script>x</script> claim [1] and [2].", 3, {1: 'The "Deal"'})
    assert "&lt;script&gt;" in out and "<script>" not in out
    assert '[[1]](#src-3-1 "Source 1: The &#x27;Deal&#x27;")' in out and "[[2]](#src-3-2" in out


def test_every_marker_of_a_key_passage_links_to_its_source():
    text = "It is not binding [1].\n\nKey passage: “The MoU is voluntary.” [1] “It is not <b>binding</b>.” [1]"
    turn = {
        "question": "q",
        "standalone": "q",
        "kind": "answer",
        "n": 2,
        "text": text,
        "citations": [{"n": 1, "title": "MoU"}],
    }
    out = answer_markdown(turn)
    assert out.count('[[1]](#src-2-1 "Source 1: MoU")') == 3
    assert "Key passage: “The MoU is voluntary.”" in out and "<b>" not in out


def test_searched_for_only_when_rewritten():
    assert searched_for("How many staff?", "how many  staff?") == ""
    assert "Searched for: “How many staff does OpenAI employ?”" in searched_for(
        "How many?", "How many staff does OpenAI employ?"
    )


def make_answer(refused: bool = False) -> Answer:
    c = Citation(
        n=1,
        doc_id="d",
        title="Doc <T>",
        url="https://example.org/d",
        quote="OpenAI may work with education.",
        start=BODY.index("OpenAI"),
        end=BODY.index("education.") + 10,
        publisher="Pub",
        date="2025-07-22",
        heading_path=["Doc <T>", "Sectors"],
    )
    return Answer(
        "Which sectors?",
        "I can't find that in the documents." if refused else "Education [1].",
        refused,
        [] if refused else [c],
        [],
        Timings(),
        "m",
        standalone_question="Which sectors?",
    )


def test_turn_and_cards_carry_metadata_and_anchors():
    doc = Document("d", "Doc <T>", BODY, publisher="Pub", date="2025-07-22")
    turn = turn_record(2, "Which sectors?", make_answer(), {"d": doc})
    html = sources_html([turn])
    assert 'id="src-2-1"' in html and "<mark>OpenAI may work with education.</mark>" in html
    assert "Doc &lt;T&gt;" in html and "Pub · 22 July 2025 · Sectors" in html
    assert 'href="https://example.org/d"' in html and 'rel="noopener noreferrer"' in html
    assert "[[1]](#src-2-1" in answer_markdown(turn)


def test_older_answers_sources_are_folded():
    doc = Document("d", "Doc", BODY)
    turns = [turn_record(n, f"q{n}", make_answer(), {"d": doc}) for n in (1, 2)]
    html = sources_html(turns)
    assert html.index("src-2-1") < html.index("<details") < html.index("src-1-1")


def test_not_found_is_its_own_state_and_errors_are_escaped():
    turn = turn_record(1, "Which sectors?", make_answer(refused=True), {})
    assert answer_markdown(turn) == NOT_FOUND_HTML and 'class="rag-notfound"' in NOT_FOUND_HTML
    err = {"n": 1, "question": "q", "standalone": "q", "kind": "error", "text": "bad <thing>", "citations": []}
    assert 'class="rag-error" role="alert"' in answer_markdown(err) and "&lt;thing&gt;" in answer_markdown(err)


def test_document_table_and_dates():
    infos = [DocumentInfo("a", "A <b>", "P", "2025-01-13", "https://x.org", "OGL", 4, True)]
    html = documents_table_html(infos)
    assert "A &lt;b&gt;" in html and "uploaded" in html and "13 January 2025" in html and "<caption>1 documents" in html
    assert format_date("2025-13-01") == "2025-13-01" and format_date("") == ""


def test_only_http_links_are_links_and_uploads_are_marked():
    doc = Document("d", "Doc", BODY)
    turn = turn_record(1, "Which sectors?", make_answer(), {"d": doc}, uploaded={"d"})
    turn["citations"][0]["url"] = "javascript:alert(1)"
    html = sources_html([turn])
    assert "javascript" not in html and "<a " not in html
    assert '<span class="rag-badge">uploaded</span>' in html
    corpus = sources_html([turn_record(1, "Which sectors?", make_answer(), {"d": doc})])
    assert "rag-badge" not in corpus and 'href="https://example.org/d"' in corpus
    infos = [DocumentInfo("a", "A", "P", "2025-01-13", "JavaScript:alert(1)", "OGL", 4, True)]
    assert "<a " not in documents_table_html(infos)
    assert "Original source" not in document_markdown(Document("a", "A", "x", source_url="data:text/html,hi"), infos[0])
    assert safe_url(" https://gov.uk/x ") == "https://gov.uk/x" and safe_url("ftp://x") == ""
