"""Command line: `python -m rag index | ask | chat | mcp | eval | batch`.

Parses arguments into `Settings` overrides and calls the pipeline; `RagError`s print as one
clear line on stderr (exit code 2), never as a stack trace.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable

from rag.errors import RagError
from rag.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    for name in ("backend", "model", "model_path", "top_k", "max_new_tokens", "openai_base_url", "openai_model"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings.load(**overrides)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["llama_cpp", "transformers", "openai"], help="generation runtime")
    p.add_argument("--model", choices=["qwen-1.5b", "qwen-0.5b", "smollm2-135m"], help="packaged model")
    p.add_argument("--model-path", dest="model_path", help="a GGUF file or Hugging Face folder instead")
    p.add_argument("--openai-base-url", dest="openai_base_url", help="base URL of an OpenAI-compatible server")
    p.add_argument("--openai-model", dest="openai_model", help="model name on that server")
    p.add_argument("--top-k", dest="top_k", type=int, help="passages given to the model")
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int)


def cmd_index(args: argparse.Namespace) -> int:
    from rag.embedding import SentenceTransformerEmbedder
    from rag.indexing import build_index

    s = _settings(args)
    t0 = time.perf_counter()
    data = build_index(s, SentenceTransformerEmbedder(), progress=not args.quiet)
    m = data.manifest
    print(
        f"indexed {m['doc_count']} documents as {m['chunk_count']} chunks in {time.perf_counter() - t0:.1f}s "
        f"-> {s.index_dir}/ (embedding {m['embedding_model']}, dim {m['embedding_dim']})"
    )
    return 0


def _print_sources(answer) -> None:
    if answer.refused:
        return
    print("\nSources:")
    for c in answer.citations:
        quote = " ".join(c.quote.split())
        print(f"  [{c.n}] {c.title} ({c.doc_id}, chars {c.start}-{c.end})")
        if c.url:
            print(f"      {c.url}")
        print(f"      “{quote[:300]}{'…' if len(quote) > 300 else ''}”")


def _ask_one(pipe, question: str, history: list[dict], as_json: bool):
    if as_json:
        answer = pipe.ask(question, history)
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return answer
    answer = None
    sent = ""
    for ev in pipe.stream(question, history):
        if ev.kind == "rewritten" and ev.data != question:
            print(f"(searching for: {ev.data})", file=sys.stderr)
        elif ev.kind == "sentence":  # checked sentences as they come; the draft is never shown
            print(ev.data if not sent else f" {ev.data}", end="", flush=True)
            sent += ev.data if not sent else f" {ev.data}"
        elif ev.kind == "answer":
            answer = ev.data
    print(answer.answer[len(sent) :] if answer.answer.startswith(sent) else f"\n{answer.answer}")
    _print_sources(answer)
    t = answer.timings
    first = f"first checked sentence {t.first_sentence_s:.1f}s, " if t.first_sentence_s else ""
    print(f"\n({answer.model}; first token {t.ttft_s:.1f}s, {first}total {t.total_s:.1f}s)", file=sys.stderr)
    return answer


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.pipeline import RagPipeline

    pipe = RagPipeline.from_settings(_settings(args), rebuild_index=False)
    _ask_one(pipe, " ".join(args.question), [], args.json)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """An interactive question prompt in the terminal, keeping the conversation for follow-ups."""
    from rag.pipeline import RagPipeline

    pipe = RagPipeline.from_settings(_settings(args), rebuild_index=True)
    print("Ask about the documents (empty line or Ctrl-D to quit).")
    history: list[dict] = []
    while True:
        try:
            q = input("\n> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not q:
            return 0
        try:
            answer = _ask_one(pipe, q, history, False)
        except RagError as e:
            print(f"error: {e}", file=sys.stderr)
            continue
        history += [{"role": "user", "content": q}, {"role": "assistant", "content": answer.answer}]


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the MCP tools and documents over stdin/stdout, for a desktop client that starts this
    process (docs/mcp.md); returns when the client closes stdin."""
    import contextlib

    from rag.library import DocumentLibrary
    from rag.pipeline import RagPipeline
    from rag.serve.mcp_server import serve_stdio

    s = _settings(args)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the protocol: nothing else may print there
        pipe = RagPipeline.from_settings(s, rebuild_index=False)
    library = DocumentLibrary(pipe.retriever, s)
    print(f"MCP server on stdio: {len(library.list())} documents, model {pipe.model_name}", file=sys.stderr)
    serve_stdio(pipe, library, s)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rag", description="Cited answers from the UK AI policy documents.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    pi = sub.add_parser("index", help="build the search index from corpus/")
    pi.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pi.set_defaults(func=cmd_index)

    pa = sub.add_parser("ask", help="answer one question, streaming, then print the sources")
    pa.add_argument("question", nargs="+")
    pa.add_argument("--json", action="store_true", help="print one Answer JSON object instead")
    _add_model_args(pa)
    pa.set_defaults(func=cmd_ask)

    pc = sub.add_parser("chat", help="interactive questions in the terminal")
    _add_model_args(pc)
    pc.set_defaults(func=cmd_chat)

    pm = sub.add_parser("mcp", help="serve the MCP tools over stdio, for desktop clients (see docs/mcp.md)")
    _add_model_args(pm)
    pm.set_defaults(func=cmd_mcp)

    from rag.evaluation.cli import add_eval_commands

    add_eval_commands(sub, _add_model_args, _settings)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
