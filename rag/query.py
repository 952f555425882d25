"""What retrieval searches for: the user's question, plus the documents' focus when the question
points at "the deal" without naming anyone.

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
