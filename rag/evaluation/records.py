"""Append-only JSON-lines result files that a run can resume from.

A run appends one record per finished item and flushes, so an interrupted run loses at most the
item in flight. Reading back repairs a half-written last line (the crash case) and refuses a
damaged line anywhere else. This module does not know what a record holds beyond its key.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import IO, Any

from rag.errors import BadInputError

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"  # a run folder's records


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records already in `path` ([] when it does not exist).

    A last line cut off mid-write is removed from the file (with a warning) so appending can go on.

    Raises:
        BadInputError: a line other than the last is not a JSON object (naming file and line).
    """
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    out: list[dict[str, Any]] = []
    offset = 0
    for n, line in enumerate(lines, start=1):
        is_tail = n == len(lines)
        if line.strip():
            try:
                value = json.loads(line)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                out.append(value)
            except ValueError as e:
                if not is_tail:
                    raise BadInputError(
                        f"{path}:{n}: not a result record ({e}); delete that line or use a new output"
                    ) from None
                log.warning("%s: dropping a half-written last line from an interrupted run", path)
                with open(path, "r+b") as f:
                    f.truncate(offset)
                return out
            if is_tail:  # a complete record without its newline: finish the line before appending
                with open(path, "ab") as f:
                    f.write(b"\n")
        offset += len(line) + 1
    return out


def done_keys(records: list[dict[str, Any]], key: str = "id") -> set[str]:
    """The keys (as strings) of records already written: `done_keys([{"id": 3}])` -> `{"3"}`."""
    return {str(r[key]) for r in records if key in r}


def append_record(f: IO[str], record: dict[str, Any]) -> None:
    """Write one record as a line and flush it to the OS, so it survives the process dying."""
    f.write(json.dumps(record, ensure_ascii=False) + "\n")
    f.flush()


def recorded_results(run_dir: Path) -> list[dict[str, Any]]:
    """A run folder's records: `results.jsonl`, or `results.jsonl.gz` for a run kept in git
    (`evals/drafts/`), so a replay needs no model and no earlier session's cache.

    Raises:
        BadInputError: the folder holds neither file.
    """
    plain, packed = run_dir / RESULTS, run_dir / (RESULTS + ".gz")
    if plain.is_file():
        return read_records(plain)
    if packed.is_file():
        with gzip.open(packed, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    raise BadInputError(f"{run_dir} holds no {RESULTS} (or {RESULTS}.gz): not a run folder")
