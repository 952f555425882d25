"""Record what people think of an answer: one JSON line per vote in `<data_dir>/feedback.jsonl`.

Append-only, so the file can be read while the app runs; this module does not analyse feedback.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from rag.settings import Settings

MAX_COMMENT_CHARS = 2000
MAX_TEXT_CHARS = 20000


class FeedbackLog:
    """Appends feedback records to a JSON Lines file; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedbackLog:
        return cls(settings.data_dir / "feedback.jsonl")

    def record(
        self,
        *,
        helpful: bool,
        question: str,
        answer: str,
        citations: list[dict[str, Any]] | None = None,
        comment: str = "",
    ) -> dict[str, Any]:
        """Append one vote.

        Args:
            helpful: the thumbs-up or thumbs-down.
            question: the question that was answered.
            answer: the answer text as shown.
            citations: the answer's citation dicts (`Citation.to_dict()`).
            comment: optional free text; cut to 2,000 characters.

        Returns:
            The record as written.
        """
        rec = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "helpful": bool(helpful),
            "comment": (comment or "").strip()[:MAX_COMMENT_CHARS],
            "question": (question or "")[:MAX_TEXT_CHARS],
            "answer": (answer or "")[:MAX_TEXT_CHARS],
            "citations": list(citations or []),
        }
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
        return rec
