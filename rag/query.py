"""What retrieval searches for: the user's question, plus the documents' focus when the question
points at "the deal" without naming anyone, and each party of a question that compares two, so
that the evidence for both reaches the model.

The corpus centres on one agreement (the UK–OpenAI strategic partnership of July 2025), so a user
who asks "Is the deal legally binding?" (or "the OpenAI deal") means that one; without help, retrieval finds whichever
MoU says "legally binding" most often. A question that names a party ("the Anthropic MoU") is left
alone. This module does not retrieve.
"""

from __future__ import annotations

import re

from rag.text import names

_DEAL = re.compile(r"\b(deal|agreement|mou|memorandum|partnership|arrangement|pact|accord)s?\b", re.IGNORECASE)


def with_focus(question: str, focus: str) -> str:
    """`question` with `focus` appended when it mentions a deal and names nobody outside the focus.

    `with_focus("Is the deal binding?", "UK OpenAI partnership")` -> `"Is the deal binding? (UK OpenAI partnership)"`;
    `with_focus("Is the Cohere deal binding?", "UK OpenAI partnership")` -> unchanged.
    """
    if not focus or not _DEAL.search(question):
        return question
    if any(n.lower() not in focus.lower() for n in names(question)):  # another party is named
        return question
    return f"{question} ({focus})"


# "How do the Google DeepMind and OpenAI memoranda differ…?": two parties joined by "and".
_COMPARES = re.compile(r"\b(compar\w*|differ\w*|difference|versus|vs\.?|both|between|same|similar\w*|alike)\b", re.I)
# "How does the OpenAI MoU compare with the Anthropic one?": what comes before and after "with".
_COMPARED_WITH = re.compile(r"^(.*\bcompar\w*)\b.*?\b(?:with|to|against)\s+(.+)$", re.I)
_CAPS = r"(?!(?:Did|Do|Does|How|What|Which|Who|Whom|When|Where|Why|Is|Are|Has|Have|Can|Will|In|The)\b)[A-Z][\w’'-]*"
_PAIR = re.compile(rf"\b({_CAPS}(?:\s+[A-Z][\w’'-]*)*)\s+and\s+(?:the\s+)?({_CAPS}(?:\s+[A-Z][\w’'-]*)*)")


def question_parts(question: str) -> tuple[str, ...]:
    """The two parties a question compares, each searched for without the other; () otherwise.

    `question_parts("How do the Google DeepMind and OpenAI memoranda differ?")` ->
    `("How do the Google DeepMind memoranda differ?", "How do the OpenAI memoranda differ?")`;
    `question_parts("How does the OpenAI MoU compare with the Anthropic one?")` ->
    `("How does the OpenAI MoU compare", "the Anthropic one")`.
    A question that asks two things ("…, and who signed it?") is not split: searching for each
    half lost the gold passage of 2 of the 19 such dev questions and found none new (note 0005).
    """
    question = question.strip()
    compared = _COMPARED_WITH.search(question)
    if compared and compared.group(2).strip(" ?."):
        before = question[: compared.start(2)].rsplit(" ", 2)[0]
        if len(before.split()) >= 3:
            return before, compared.group(2).strip(" ?.")
    pair = _PAIR.search(question)
    if pair and _COMPARES.search(question):
        head, tail = question[: pair.start()], question[pair.end() :]
        return f"{head}{pair.group(1)}{tail}", f"{head}{pair.group(2)}{tail}"
    return ()
