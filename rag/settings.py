"""Typed settings read from `RAG_*` environment variables.

Values only: this module builds no clients and never writes the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PackagedModelName = Literal["qwen-1.5b", "qwen-0.5b", "smollm2-135m"]


def _default_cache_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "uk-ai-rag"


class Settings(BaseSettings):
    """Every knob of the pipeline. `RAG_TOP_K=8 python -m rag ask ...` overrides `top_k`."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="forbid")

    # Where things live.
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    data_dir: Path = Path("data")  # uploads and feedback

    # Chunking (changing these makes the index stale).
    chunk_size: int = Field(500, ge=100, le=8000)
    chunk_overlap: int = Field(100, ge=0, le=2000)

    # Retrieval.
    retrieval_mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    top_k: int = Field(5, ge=1, le=50)  # passages given to the model
    candidates: int = Field(30, ge=1, le=500)  # per retriever, before fusion
    rrf_k: int = Field(60, ge=1)
    dedup_threshold: float = Field(0.85, ge=0.0, le=1.0)
    min_relevance: float = Field(0.2, ge=-1.0, le=1.0)  # best dense cosine below this: refuse...
    rare_term_max_df: int = Field(3, ge=0)  # ...unless a question word occurs in 1..this many documents
    # A question about "the deal" that names no one is about the documents' focus: search for it too.
    focus_query: str = "UK government OpenAI strategic partnership memorandum of understanding"

    # Vector store (changing the store or the Milvus collection makes the index stale).
    vector_store: Literal["faiss", "milvus"] = "faiss"
    faiss_index: Literal["auto", "flat", "hnsw", "ivf_flat", "ivf_pq"] = "auto"  # auto: by corpus size
    milvus_uri: str = ""  # a local path (Milvus Lite, default index/milvus.db) or http://host:19530
    milvus_token: SecretStr = SecretStr("")  # "user:password" or an API key, for an authenticated server
    milvus_collection: str = ""  # default: derived from the corpus folder and embedding model
    # auto: FLAT up to 100,000 passages, IVF_FLAT above (rag/stores/milvus_plan.py); hnsw and autoindex on request
    milvus_index: Literal["auto", "flat", "ivf_flat", "hnsw", "autoindex"] = "auto"
    milvus_db_name: str = ""  # a database on a Milvus server; empty: the server's default database
    milvus_ca: str = ""  # path to the CA certificate (PEM) that signed an https:// server's certificate

    # Generation.
    backend: Literal["llama_cpp", "transformers", "openai"] = "llama_cpp"
    model: PackagedModelName = "qwen-1.5b"
    model_path: Path | None = None  # a GGUF file or a Hugging Face model folder; overrides `model`
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_model: str = "local"
    openai_api_key: SecretStr = SecretStr("")
    max_new_tokens: int = Field(300, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    n_ctx: int = Field(4096, ge=512)
    n_threads: int | None = None
    prompt_cache_mb: int = Field(256, ge=0)  # llama.cpp states kept in RAM to skip re-reading a shared prompt prefix
    seed: int = 0
    rewrite_followups: bool = True
    follow_up_fusion: bool = True  # a follow-up also searches with its own words after the previous question
    refusal_min_p: float = Field(0.35, ge=0.0, le=1.0)  # refuse only when the model's p(refusal opening) >= this
    demonstrations: bool = True  # worked examples before the passages (kept in llama.cpp's prompt cache)
    answerability: bool = True  # the fitted answer/refuse decision (rag/answerability.json)

    # Citation check.
    support_threshold: float = Field(0.5, ge=0.0, le=1.0)
    key_passage: bool = True  # end every answer with the sentences of a cited passage closest to the question, quoted
    answer_type_check: bool = True  # "how much/how many/how long/who/where/when" answers must state that kind of thing
    unsupported: Literal["drop", "flag"] = "drop"

    # Serving.
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    api_keys: SecretStr = SecretStr("")  # comma-separated; empty means no auth
    admin_keys: SecretStr = SecretStr("")  # comma-separated; upload and remove documents (empty: any API key)
    cors_origins: str = ""  # comma-separated origins, besides the app's own, that may upload documents
    # Addresses of reverse proxies whose X-Forwarded-For / -Proto headers are believed (comma-separated
    # IPs or CIDR ranges, or "*"); empty: nobody's, so a client cannot choose its own rate-limit identity.
    trusted_proxies: str = ""
    max_body_bytes: int = Field(1_000_000, ge=10_000)  # any request body but an upload
    # Answers generating or waiting at once; past it, 503. The p95 answer takes 5.2 s alone
    # (bench/RESULTS.md), so the last in a full queue waits about 85 s, within the time limit.
    max_queue: int = Field(16, ge=1, le=1000)
    request_timeout_s: float = Field(120.0, gt=0)  # one answer's time limit, queueing included
    rate_limit: str = Field("", pattern=r"^(\d+/(second|minute|hour))?$")  # e.g. "30/minute" per key or address

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_allows_a_request(cls, v: str) -> str:
        if v and int(v.partition("/")[0]) < 1:  # the pattern has checked the form
            raise ValueError(f'"{v}" would refuse every request; allow at least 1, or leave it empty for no limit')
        return v

    @classmethod
    def load(cls, **overrides) -> Settings:
        """`Settings(**overrides)`, with invalid values reported as one readable `BadInputError`."""
        from pydantic import ValidationError

        from rag.errors import BadInputError

        try:
            return cls(**overrides)
        except ValidationError as e:
            problems = "; ".join(
                f"RAG_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in e.errors()
            )
            raise BadInputError(f"invalid setting: {problems}") from None

    def api_key_set(self) -> set[str]:
        return {k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()}


def shipped(name: str):
    """The shipped default of one setting, for constructors' defaults: `shipped("top_k")` -> 5.

    Constructors take their defaults from here, so code and settings cannot disagree.
    """
    return Settings.model_fields[name].get_default(call_default_factory=True)
