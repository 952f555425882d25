"""Benchmark: index build time, answer latency (time to first token, to the first checked sentence,
total), the machine's prefill rate beside them, and peak memory.

Runs each measurement in a fresh subprocess so peak RSS is per task, and appends a dated
section with the machine description to bench/RESULTS.md. Usage: `python bench/run.py [--model M] [--n N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Which sectors could OpenAI work with under the agreement?",
    "Is the UK's agreement with OpenAI legally binding?",
    "How many staff does OpenAI employ in London?",
    "What is an AI Growth Zone?",
    "How much time did the Copilot experiment save civil servants each day?",
    "How much is OpenAI paying the UK government?",
]


def child_index(index_dir: str) -> dict:
    from rag.embedding import SentenceTransformerEmbedder
    from rag.indexing import build_index
    from rag.settings import Settings

    t0 = time.perf_counter()
    data = build_index(Settings(index_dir=Path(index_dir)), SentenceTransformerEmbedder(), progress=False)
    return {"build_s": time.perf_counter() - t0, "chunks": len(data.chunks)}


def child_answer(index_dir: str, model: str, n: int) -> dict:
    from rag.pipeline import RagPipeline
    from rag.settings import Settings

    t0 = time.perf_counter()
    pipe = RagPipeline.from_settings(Settings(index_dir=Path(index_dir), model=model))
    load_s = time.perf_counter() - t0
    prefill = prefill_rate(pipe.generator)
    pipe.warm()  # read the fixed prompt prefix once, as the app does
    rows = []
    for q in (QUESTIONS * 3)[:n]:
        a = pipe.ask(q)
        gen_s = max(a.timings.total_s - a.timings.ttft_s, 1e-9)
        rows.append(
            {
                "q": q,
                "ttft": a.timings.ttft_s,
                "first_sentence": a.timings.first_sentence_s,
                "total": a.timings.total_s,
                "retrieve": a.timings.retrieve_s,
                "tokens": a.tokens,
                "tps": a.tokens / gen_s if a.tokens > 1 else 0.0,
                "refused": a.refused,
            }
        )
    return {"load_s": load_s, "rows": rows, "prefill_tps": prefill}


def prefill_rate(generator, n: int = 512) -> float | None:
    """The model's prompt-reading speed in tokens/s (best of 3 over `n` tokens), so timings taken on
    different days can be compared; None for a backend without a llama.cpp context."""
    llm = getattr(generator, "_llm", None)
    if llm is None:
        return None
    tokens = llm.tokenize(("The government signed a memorandum of understanding with OpenAI. " * 60).encode())[:n]
    best = 0.0
    for _ in range(3):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens)
        best = max(best, len(tokens) / (time.perf_counter() - t0))
    llm.reset()
    return best


def run_child(args: list[str]) -> tuple[dict, float]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data, data.pop("peak_rss_mb")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen-1.5b")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--child", choices=["index", "answer"])
    ap.add_argument("--index-dir", default=str(ROOT / ".cache" / "bench-index"))
    a = ap.parse_args()
    if a.child:
        sys.path.insert(0, str(ROOT))
        res = child_index(a.index_dir) if a.child == "index" else child_answer(a.index_dir, a.model, a.n)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return

    idx, idx_rss = run_child(["--child", "index", "--index-dir", a.index_dir])
    ans, ans_rss = run_child(["--child", "answer", "--index-dir", a.index_dir, "--model", a.model, "--n", str(a.n)])
    rows = ans["rows"]
    ttft = [r["ttft"] for r in rows if not r["refused"] or r["tokens"]]
    first = [r["first_sentence"] for r in rows if r["first_sentence"]] or [0.0]
    prefill = f"{ans['prefill_tps']:.0f} tokens/s" if ans.get("prefill_tps") else "not measured (backend)"
    total = [r["total"] for r in rows]
    tps = [r["tps"] for r in rows if r["tps"]]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    lines = [
        f"\n## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {a.model}, commit {commit}\n",
        f"Machine: {os.cpu_count()} cores ({cpu}), {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}\n",
        "| measure | value |",
        "|---|---|",
        f"| index build ({idx['chunks']} chunks, cold process) | {idx['build_s']:.1f} s |",
        f"| index build peak RSS | {idx_rss:.0f} MB |",
        f"| pipeline load (embedder + index + model) | {ans['load_s']:.1f} s |",
        f"| questions answered | {len(rows)} |",
        f"| prefill rate (512 tokens, best of 3) | {prefill} |",
        f"| time to first token p50 / p95 | {statistics.median(ttft):.2f} / {pct(ttft, 0.95):.2f} s |",
        f"| time to first checked sentence p50 / p95 ({len([r for r in rows if r['first_sentence']])} streamed) "
        f"| {statistics.median(first):.2f} / {pct(first, 0.95):.2f} s |",
        f"| total answer time p50 / p95 | {statistics.median(total):.2f} / {pct(total, 0.95):.2f} s |",
        f"| retrieval p50 | {statistics.median(r['retrieve'] for r in rows) * 1000:.0f} ms |",
        f"| generation speed p50 | {statistics.median(tps) if tps else 0:.1f} tokens/s |",
        f"| answering peak RSS | {ans_rss:.0f} MB |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    results = ROOT / "bench" / "RESULTS.md"
    if not results.exists():
        results.write_text("# Benchmark results\n\nWritten by `make bench` (bench/run.py); newest last.\n")
    with open(results, "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
