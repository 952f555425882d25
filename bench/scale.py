"""Retrieval at scale: FAISS index types, Milvus Lite and the keyword index on synthetic corpora.

Each (size, store, index) runs in a fresh subprocess so its memory is its own. Vectors are
clustered unit vectors in 384 dimensions (like sentence embeddings, unlike uniform noise, they
have neighbours worth finding); queries are perturbed corpus vectors; recall@10 is against exact
search. The keyword side indexes generated text with Zipf-distributed words. `--vectors minilm-text`
puts real text and MiniLM's own vectors of it in their place (runs of 6-24 corpus words, embedded
once and cached by `bench/minilm_vectors.py`), with the reference set's questions as queries;
`--vectors minilm` is the cheaper composition of sentence vectors. Writes bench/scale.json and a
dated table in bench/RESULTS.md.
Usage: `python bench/scale.py [--sizes 100000 1000000] [--lite-max 100000] [--queries 200]
[--only app] [--vectors minilm-text]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DIM = 384


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process and its descendants (Milvus Lite runs its engine as a child)."""
    total = 0.0
    pids = [str(pid)]
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                pids += (task / "children").read_text().split()
        except OSError:
            continue
    return total


def vectors(n: int, seed: int = 0) -> np.ndarray:
    """`n` unit vectors around `n // 100` random centres (built in blocks to bound memory)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n // 100, 1), DIM), dtype=np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, 100_000):
        e = min(s + 100_000, n)
        block = centres[rng.integers(0, len(centres), e - s)] + 0.8 * rng.standard_normal(
            (e - s, DIM), dtype=np.float32
        )
        out[s:e] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def queries(v: np.ndarray, nq: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = v[rng.integers(0, len(v), nq)] + 0.05 * rng.standard_normal((nq, DIM), dtype=np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def exact_top10(v: np.ndarray, q: np.ndarray) -> np.ndarray:
    from rag.stores.faiss import exact_top

    return exact_top(v, q, 10)


def timed_queries(search, q: np.ndarray, truth: np.ndarray) -> dict:
    search(q[0])  # warm-up
    times, found = [], 0
    for i in range(len(q)):
        t0 = time.perf_counter()
        ids = search(q[i])
        times.append((time.perf_counter() - t0) * 1000)
        found += len(set(ids[:10]) & set(truth[i].tolist()))
    times.sort()
    return {
        "query_p50_ms": round(statistics.median(times), 2),
        "query_p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        "recall_at_10": round(found / (10 * len(q)), 4),
    }


VECTORS = os.environ.get("SCALE_VECTORS", "synthetic")  # `--vectors`, passed on to the children
MINILM = VECTORS in ("minilm", "minilm-text")  # real questions as queries, MiniLM at upload
TEXT = VECTORS == "minilm-text"  # passages are corpus word runs, each embedded by MiniLM itself


def passage_vectors(n: int) -> np.ndarray:
    """The `n` passages' vectors: synthetic clusters; (`--vectors minilm`) MiniLM's, composed from
    the real sentences of `real_texts(n)`; or (`--vectors minilm-text`) MiniLM's embeddings of
    `passage_texts(n)` themselves (bench/minilm_vectors.py)."""
    if TEXT:
        from minilm_vectors import text_vectors

        return text_vectors(n)
    if not MINILM:
        return vectors(n)
    from minilm_vectors import passage_vectors as composed

    return composed(n)


def passage_texts(n: int) -> list[str]:
    """The text of the `n` passages whose vectors `passage_vectors(n)` gives (the keyword side's)."""
    if TEXT:
        from minilm_vectors import text_windows

        return text_windows(n)
    return real_texts(n)


def vectors_label() -> str:
    from minilm_vectors import LABEL, TEXT_LABEL

    return TEXT_LABEL if TEXT else LABEL if MINILM else "synthetic"


def texts_label() -> str:
    return "corpus-word-runs" if TEXT else "corpus-sentences"


def child_dense(n: int, store: str, index: str, nq: int) -> dict:
    v = passage_vectors(n)
    if MINILM:  # the reference set's questions, embedded by MiniLM
        from minilm_vectors import question_vectors

        q = question_vectors()[:nq]
    else:
        q = queries(v, nq)
    truth = exact_top10(v, q)
    base = rss_mb()
    ids = np.arange(n, dtype=np.int64)
    t0 = time.perf_counter()
    if store == "faiss":
        from rag.stores.faiss import FaissIndex

        s = FaissIndex(DIM, index)
        s.build(ids, v)
        build_s = time.perf_counter() - t0
        row = {"build_s": round(build_s, 1), "memory_mb": round(rss_mb() - base)}
        # One query per thread, as the app serves them: OpenMP threads only contend on 2 busy cores
        # (Flat at 100k: p50 105 ms with 2 threads, 26 ms with 1, while another job ran).
        s._faiss.omp_set_num_threads(1)
        row |= timed_queries(lambda x: [i for i, _ in s.search(x, 10)], q, truth)
        row |= {"vectors": vectors_label()}
        if s.index_type.startswith("ivf"):
            row |= {"nprobe": s.nprobe, "calibrated_recall_at_10": s.calibrated_recall}
        return row
    from pymilvus import MilvusClient

    with tempfile.TemporaryDirectory(prefix="scale-lite-") as tmp:
        client = MilvusClient(str(Path(tmp) / "scale.db"))
        base = rss_mb()  # the engine process has started
        t0 = time.perf_counter()
        client.create_collection("scale", dimension=DIM, metric_type="IP", consistency_level="Strong")
        client.drop_index("scale", "vector") if index != "AUTOINDEX" else None
        params = client.prepare_index_params()
        params.add_index(
            "vector", index_type=index, metric_type="IP", params={"nlist": 1024} if index == "IVF_FLAT" else {}
        )
        if index != "AUTOINDEX":
            client.release_collection("scale")
            client.create_index("scale", params)
            client.load_collection("scale")
        for s in range(0, n, 1000):  # 5000-row inserts into Lite took 90 s each here, 1000-row 0.3 s
            client.insert("scale", [{"id": int(i), "vector": v[i].tolist()} for i in range(s, min(s + 1000, n))])
        client.flush("scale")
        client.query("scale", filter="", output_fields=["count(*)"], consistency_level="Strong")
        build_s = time.perf_counter() - t0
        row = {"build_s": round(build_s, 1), "memory_mb": round(rss_mb() - base)}
        sp = {"metric_type": "IP", "params": {"nprobe": 32}}

        def search(x):
            res = client.search("scale", [x.tolist()], limit=10, search_params=sp, consistency_level="Strong")
            return [h["id"] for h in res[0]]

        row |= timed_queries(search, q, truth)
        client.close()
        return row


def texts(n: int, seed: int = 2) -> list[str]:
    rng = np.random.default_rng(seed)
    words = np.minimum(rng.zipf(1.3, size=n * 60), 30_000)
    return [" ".join(f"w{w}" for w in words[i * 60 : (i + 1) * 60]) for i in range(n)]


def child_keyword(n: int, store: str, index: str, nq: int) -> dict:
    """rank-bm25 (`BM25Index`): an upload rebuilds it whole; `KeywordIndex`: an upload adds its passages."""
    from rag.keywords import KeywordIndex
    from rag.lexical import BM25Index

    t = texts(n + 20)
    corpus, upload = t[:n], t[n:]
    rng = np.random.default_rng(3)
    qs = [" ".join(f"w{w}" for w in rng.integers(2, 3000, 4)) for _ in range(min(nq, 50))]
    base = rss_mb()
    t0 = time.perf_counter()
    if store == "rank-bm25":
        idx = BM25Index(corpus)
        build_s = time.perf_counter() - t0
        memory = rss_mb() - base
        t0 = time.perf_counter()
        idx = BM25Index(corpus + upload)  # what an upload costs: the whole index again
        search = idx.search
    else:
        idx = KeywordIndex()
        idx.add(list(range(n)), corpus)
        build_s = time.perf_counter() - t0
        memory = rss_mb() - base
        t0 = time.perf_counter()
        idx.add(list(range(n, n + 20)), upload)
        search = idx.search
    upload_s = time.perf_counter() - t0
    row = {"build_s": round(build_s, 1), "memory_mb": round(memory), "upload_s": round(upload_s, 2)}
    times, found = [], 0
    ref = BM25Index(corpus + upload) if store != "rank-bm25" and n <= 100_000 else None
    for qq in qs:
        t0 = time.perf_counter()
        got = search(qq, 30)
        times.append((time.perf_counter() - t0) * 1000)
        if ref is not None:
            found += len({i for i, _ in got[:10]} & {i for i, _ in ref.search(qq, 10)}) / max(
                1, min(10, len(ref.search(qq, 10)))
            )
    times.sort()
    row |= {
        "query_p50_ms": round(statistics.median(times), 2),
        "query_p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        "recall_at_10": round(found / len(qs), 4) if ref is not None else None,
    }
    return row


def real_texts(n: int, seed: int = 5) -> list[str]:
    """`n` passages of 3 to 7 sentences drawn from the corpus's own passages (real words, real
    word frequencies; a small vocabulary, so long postings: a hard case for keyword search)."""
    from rag.chunking import chunk_corpus
    from rag.loaders import load_corpus
    from rag.settings import Settings
    from rag.text import split_sentences

    sentences = [s for c in chunk_corpus(load_corpus(Settings().corpus_dir)) for s in split_sentences(c.text)]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(sentences), size=n * 7)
    sizes = rng.integers(3, 8, size=n)
    return [" ".join(sentences[j] for j in picks[i * 7 : i * 7 + sizes[i]]) for i in range(n)]


def questions() -> list[str]:
    with open(ROOT / "evals" / "qa.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["question"] for line in f]


class RandomEmbedder:
    """Unit vectors from a seeded generator: the benchmark times the stores, not the encoder."""

    name, dim = "random", DIM

    def embed_documents(self, items, progress=False):
        v = np.random.default_rng(len(items)).standard_normal((len(items), DIM), dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def embed_query(self, text):
        return self.embed_documents([text])[0]


def dense_recall(retriever, n: int, qs: list[str]) -> float:
    """Recall@10 of the app's dense search against exact search over the same vectors, for `qs`."""
    v = passage_vectors(n)  # in the order the index was built, as `data.keys` is
    q = np.stack([retriever.embedder.embed_query(x) for x in qs])
    truth = retriever.data.keys[exact_top10(v, q)]
    found = sum(
        len({i for i, _ in retriever.data.vectors.search(x, 10)} & set(t.tolist()))
        for x, t in zip(q, truth, strict=True)
    )
    return round(found / (10 * len(q)), 4)


class QuestionEmbedder:
    """MiniLM for the app rows: the reference questions' vectors computed before timing starts
    (query embedding is excluded from the timings, as with `RandomEmbedder`), real embedding for an
    upload's passages (so `upload_s` includes it)."""

    def __init__(self) -> None:
        from minilm_vectors import embedder

        self.inner = embedder()
        self.name, self.dim = self.inner.name, self.inner.dim
        self._q = {t: v for t, v in zip(questions(), self._embed_questions(), strict=True)}

    def _embed_questions(self) -> np.ndarray:
        from minilm_vectors import question_vectors

        return question_vectors()

    def embed_documents(self, items, progress=False):
        return self.inner.embed_documents(items)

    def embed_query(self, text):
        return self._q[text] if text in self._q else self.inner.embed_query(text)


def app_folder(n: int, index: str) -> Path:
    """Where the app-path benchmark keeps the index it builds (a cache: not in git, reused)."""
    kind = f"-{VECTORS}" if MINILM else ""
    return (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "uk-ai-rag"
        / "scale"
        / f"app-{n}-{index}{kind}"
    )


def current_has_columns(folder: Path) -> bool:
    """Whether the build in use was saved with the chunk and document column files (`rag.tables`)."""
    from rag.tables import CHUNK_COLUMNS

    current = folder / "CURRENT"
    return current.is_file() and (folder / "builds" / current.read_text().strip() / CHUNK_COLUMNS).is_file()


def build_app_index(n: int, index: str, folder: Path) -> float:
    """Save an index of `n` real-text passages as `rag index` saves one (FAISS `index` over synthetic
    vectors, the keyword index, documents of 10 passages); returns the seconds it took."""
    from rag.index import IndexData, save_index
    from rag.keywords import KeywordIndex
    from rag.lexical import document_frequency
    from rag.stores.base import chunk_keys
    from rag.stores.faiss import FaissIndex
    from rag.types import Chunk, Document

    t = passage_texts(n)
    chunks = [Chunk(f"d{i // 10}#{i % 10:04d}", f"d{i // 10}", t[i], 0, len(t[i])) for i in range(n)]
    docs = {
        f"d{j}": Document(doc_id=f"d{j}", title=f"Document {j}", body=" ".join(t[j * 10 : j * 10 + 10]))
        for j in range((n + 9) // 10)
    }
    t0 = time.perf_counter()
    store = FaissIndex(DIM, index)
    store.build(chunk_keys(chunks), passage_vectors(n))
    keywords = KeywordIndex()
    keywords.add_chunks(chunks)
    doc_freq = dict(document_frequency(d.body for d in docs.values()))
    save_index(folder, IndexData({"chunk_count": n}, chunks, store, docs, keywords, doc_freq))
    return time.perf_counter() - t0


def child_app(n: int, store: str, index: str, nq: int) -> dict:
    """The app's whole retrieval path over `n` passages of real text, in a fresh process: start-up
    (`load_index` and the retriever, as the app starts) and its resident memory, `retrieve()` for the
    reference questions (query embedding excluded), and one upload of 3 passages (`add_documents`
    and the save). The index is built once into `app_folder` (build_s: 0 when it was there)."""
    from rag.chunking import chunk_document
    from rag.index import load_index, save_index, write_lock
    from rag.retrieval import HybridRetriever
    from rag.types import Document

    folder = app_folder(n, index)
    build_s = 0.0 if (folder / "CURRENT").is_file() else build_app_index(n, index, folder)
    if not build_s and not current_has_columns(folder):  # cached by an older version: save it afresh
        t0 = time.perf_counter()
        with write_lock(folder):
            save_index(folder, load_index(folder), compact=True)
        build_s = time.perf_counter() - t0
    if build_s:  # measure start-up in a process that did not just build it
        out = subprocess.run(
            [sys.executable, __file__, "--child", "app", str(n), store, index, str(nq)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {**json.loads(out.strip().splitlines()[-1]), "build_s": round(build_s, 1)}
    embedder = QuestionEmbedder() if MINILM else RandomEmbedder()  # before the clock: not start-up
    base = rss_mb()
    t0 = time.perf_counter()
    retriever = HybridRetriever(load_index(folder), embedder)
    startup_s = time.perf_counter() - t0
    memory = rss_mb() - base
    retriever.data.vectors._faiss.omp_set_num_threads(1)  # one query per thread, as the app serves them
    qs = questions()[:nq]
    retriever.retrieve(qs[0], 5)  # warm-up
    times, keyword_times = [], []
    for q in qs:
        t0 = time.perf_counter()
        retriever.retrieve(q, 5)
        times.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        retriever._keywords.search(q, retriever.candidates)
        keyword_times.append((time.perf_counter() - t0) * 1000)
    doc = Document(doc_id=f"up{time.time_ns()}", title="upload", body="\n\n".join(real_texts(12, seed=6)))
    t0 = time.perf_counter()
    with write_lock(folder):  # as an upload saves: chunk, embed, add, persist
        save_index(folder, retriever.add_documents([doc], chunk_document(doc)))
    upload_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with write_lock(folder):
        save_index(folder, retriever.remove_document(doc.doc_id))
    remove_s = time.perf_counter() - t0
    with write_lock(folder):
        save_index(folder, retriever.data, compact=True)  # leave the cached index as it was
    times.sort()
    keyword_times.sort()
    recall = dense_recall(retriever, n, qs) if MINILM else None
    return {
        "build_s": 0.0,
        "startup_s": round(startup_s, 2),
        "memory_mb": round(memory),
        "rss_mb": round(rss_mb()),
        "upload_s": round(upload_s, 2),
        "remove_s": round(remove_s, 2),
        "query_p50_ms": round(statistics.median(times), 2),
        "query_p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        "keyword_p50_ms": round(statistics.median(keyword_times), 2),
        "keyword_p95_ms": round(keyword_times[int(0.95 * (len(keyword_times) - 1))], 2),
        "recall_at_10": recall,
        "vectors": vectors_label(),
        "nprobe": getattr(retriever.data.vectors, "nprobe", None) if index.startswith("ivf") else None,
        "texts": texts_label(),
    }


def run_child(kind: str, n: int, store: str, index: str, nq: int, timeout: float) -> dict | None:
    cmd = [sys.executable, __file__, "--child", kind, str(n), store, index, str(nq)]
    print(f"  {n:>9,} {store:<10} {index:<9} ...", end="", flush=True)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout
    except subprocess.TimeoutExpired:
        print(f" skipped: over {timeout:.0f} s")
        return None
    except subprocess.CalledProcessError as e:
        print(f" failed: {e.stderr.strip().splitlines()[-1:]}")
        return None
    row = {"n": n, "store": store, "index": index, "upload_s": None, **json.loads(out.strip().splitlines()[-1])}
    print(
        f" build {row['build_s']} s, {row['memory_mb']} MB, p50 {row['query_p50_ms']} ms, recall {row['recall_at_10']}"
    )
    return row


def table(rows: list[dict]) -> str:
    head = (
        "| n | store | index | build s | start-up s | memory MB | query p50 ms | query p95 ms | recall@10 | upload s |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    dash = lambda v: "-" if v is None else v  # noqa: E731
    return head + "".join(
        f"| {r['n']:,} | {r['store']} | {r['index']} | {r['build_s']} | {dash(r.get('startup_s'))} | {r['memory_mb']} | "
        f"{r['query_p50_ms']} | {r['query_p95_ms']} | {dash(r['recall_at_10'])} | {dash(r.get('upload_s'))} |\n"
        for r in rows
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--faiss", nargs="*", default=["flat", "hnsw", "ivf_flat", "ivf_pq"])
    ap.add_argument("--lite", nargs="*", default=["FLAT", "IVF_FLAT"], help="Milvus Lite index types")
    ap.add_argument("--lite-max", type=int, default=100_000, help="largest corpus to load into Milvus Lite")
    ap.add_argument("--keyword-max", type=int, default=100_000, help="largest corpus for rank-bm25")
    ap.add_argument("--only", choices=["dense", "keyword", "app"], help="run only these rows")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument(
        "--vectors",
        choices=["synthetic", "minilm", "minilm-text"],
        default="synthetic",
        help="minilm: MiniLM vectors of the real-text passages (composed from embedded sentences); "
        "minilm-text: runs of 6-24 corpus words, each embedded by MiniLM (`python bench/minilm_vectors.py "
        "--embed 1000000` first: about 1 h 45 min on 2 cores)",
    )
    ap.add_argument("--timeout", type=float, default=1500, help="seconds per measurement")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "scale.json")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.child:
        os.environ["SCALE_VECTORS"] = args.vectors  # read by the children at import
    else:  # a child keeps its parent's choice (its own --vectors is the default)
        kind, n, store, index, nq = args.child
        fn = {"dense": child_dense, "keyword": child_keyword, "app": child_app}[kind]
        print(json.dumps(fn(int(n), store, index, int(nq))))
        return 0

    want = lambda kind: args.only in (None, kind)  # noqa: E731
    rows = []
    for n in args.sizes:
        for index in args.faiss if want("dense") else []:
            rows.append(run_child("dense", n, "faiss", index, args.queries, args.timeout))
        for index in args.lite if want("dense") and n <= args.lite_max else []:
            rows.append(run_child("dense", n, "milvus-lite", index, args.queries, args.timeout))
        if want("keyword") and n <= args.keyword_max:
            rows.append(run_child("keyword", n, "rank-bm25", "bm25", args.queries, args.timeout))
        if want("keyword"):
            rows.append(run_child("keyword", n, "keyword-index", "bm25", args.queries, args.timeout))
        if want("app"):
            rows.append(run_child("app", n, "app", "flat" if n <= 100_000 else "ivf_flat", args.queries, args.timeout))
    rows = [r for r in rows if r]

    # A row replaces the earlier one for the same size, store, index and vectors; the others stay.
    def key(r: dict) -> tuple:
        return r["n"], r["store"], r["index"], r.get("vectors", "synthetic")

    ours = {key(r) for r in rows}
    kept = json.loads(args.out.read_text()) if args.out.is_file() else []
    merged = [r for r in kept if key(r) not in ours] + rows
    merged.sort(key=lambda r: (r["n"], r["store"] == "app"))
    args.out.write_text(json.dumps(merged, indent=1) + "\n")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    section = (
        f"\n## Scale {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}\n\n"
        f"Machine: {os.cpu_count()} cores ({cpu}), {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}; `make scale` (bench/scale.py), {args.queries} single queries per row, "
        "memory = resident growth while building (Milvus Lite: its engine process included); "
        "rank-bm25 rows: build = what one upload costs today (a full rebuild), queries ask for 30 candidates; "
        "app rows: start-up = `load_index` and the retriever in a fresh process, memory = its growth over that, "
        "build 0.0 = the index was reused from the cache folder.\n\n" + table(rows)
    )
    with open(ROOT / "bench" / "RESULTS.md", "a") as f:
        f.write(section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
