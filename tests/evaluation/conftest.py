"""Fixtures for the evaluation tests: a five-item reference set over the tiny test corpus, and a
pipeline whose fake model answers by question, so results do not depend on the order items run in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rag.citations import CitationChecker
from rag.evaluation.qaset import QAItem
from rag.pipeline import RagPipeline
from rag.retrieval import HybridRetriever
from tests.fakes import ScriptedGenerator


def item(
    id: str, question: str, answer: str, doc_ids=(), quotes=(), key_facts=(), type="factoid", history=(), split="dev"
) -> dict:
    """One reference item as a JSON-ready dict; answerable exactly when it names documents."""
    return {
        "id": id,
        "question": question,
        "answer": answer,
        "answerable": bool(doc_ids),
        "doc_ids": list(doc_ids),
        "quotes": list(quotes),
        "key_facts": list(key_facts),
        "type": type,
        "history": list(history),
        "split": split,
    }


SECTORS_QUOTE = "OpenAI may provide technology to education, defence, security and justice."
SKILLS_QUOTE = "The plan aims to train 7.5 million workers in AI skills by 2030."
HISTORY = [
    {"role": "user", "content": "Tell me about the skills plan."},
    {"role": "assistant", "content": "It is a plan to train workers in AI skills."},
]

TINY_SET = [
    item(
        "q1",
        "Which sectors could OpenAI provide technology to?",
        "Education, defence, security and justice.",
        ["openai-deal"],
        [SECTORS_QUOTE],
        ["education", "defence"],
        type="list",
    ),
    item(
        "q2",
        "Is the Cohere memorandum legally binding?",
        "No, the memorandum is not legally binding.",
        ["cohere-mou"],
        ["The memorandum is not legally binding."],
        ["not legally binding"],
        split="test",
    ),
    item("q3", "What is the budget of the bananas programme?", "The documents do not say.", type="unanswerable"),
    item(
        "q4",
        "How many workers will it train?",
        "It aims to train 7.5 million workers by 2030.",
        ["skills-plan"],
        [SKILLS_QUOTE],
        ["7.5 million"],
        type="follow-up",
        history=HISTORY,
        split="test",
    ),
    item(
        "q5",
        "What will OpenAI do with its London office?",
        "OpenAI will expand its London office.",
        ["openai-deal"],
        ["OpenAI will expand its London office"],
        ["expand"],
    ),
]

# What the fake model says, keyed by the question (or follow-up) in its prompt. Worked out by hand:
# q1 cites the right passage; q2 cites the wrong one (the checker moves the citation to passage 1);
# q4 is rewritten, then cites passage 1 and a passage that does not exist; q5 is wrongly refused;
# q3 shares no word with the corpus, so it is refused before the model is asked.
REPLIES = {
    "Which sectors could OpenAI provide technology to?": "OpenAI may provide technology to education and defence [1].",
    "Is the Cohere memorandum legally binding?": "The memorandum is not legally binding [2].",
    "How many workers will it train?": "How many workers will the skills plan train?",
    "How many workers will the skills plan train?": "It aims to train 7.5 million workers by 2030 [1] [4].",
}


class KeyedGenerator(ScriptedGenerator):
    """Replies by the question line of the prompt (`Question: ...` or `Follow-up question: ...`)."""

    def __init__(self, by_question: dict[str, str]) -> None:
        super().__init__()
        self.by_question = by_question

    def _next(self, messages: list[dict[str, str]]) -> str:
        self.prompts.append(messages)
        m = re.search(r"^(?:Follow-up question|Question): (.*)$", messages[-1]["content"], re.MULTILINE)
        return self.by_question.get(m.group(1).strip(), self.default) if m else self.default

    def questions(self) -> list[str]:
        """The question line of every prompt received, in order."""
        out = []
        for messages in self.prompts:
            m = re.search(r"^(?:Follow-up question|Question): (.*)$", messages[-1]["content"], re.MULTILINE)
            out.append(m.group(1).strip() if m else "")
        return out


@pytest.fixture
def eval_pipeline(settings, embedder, index_data):
    """`eval_pipeline()` -> (pipeline, generator) over the tiny corpus, answering with `REPLIES`."""

    def make(replies: dict[str, str] | None = None) -> tuple[RagPipeline, KeyedGenerator]:
        gen = KeyedGenerator(REPLIES if replies is None else replies)
        retriever = HybridRetriever(index_data, embedder, candidates=10)
        pipe = RagPipeline(
            retriever, gen, CitationChecker(embedder), top_k=3, min_relevance=settings.min_relevance, key_passage=False
        )
        return pipe, gen

    return make


@pytest.fixture
def tiny_items() -> list[QAItem]:
    return [QAItem.from_dict(d) for d in TINY_SET]


@pytest.fixture
def qa_file(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in TINY_SET), encoding="utf-8")
    return path
