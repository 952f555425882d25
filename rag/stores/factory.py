"""Pick and open the vector store named by `Settings.vector_store`: `faiss` or `milvus`.

Says which package to install when an import is missing, and turns a malformed Milvus URI, a missing
CA certificate or an unreachable server into one clear `RagError`. This module does not search.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rag.errors import BadInputError, RagError, VectorStoreError
from rag.settings import Settings
from rag.stores.base import VectorIndex

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # seconds to wait for a server before saying it cannot be reached
INSTALL_MILVUS = "install pymilvus and milvus-lite (`pip install -r requirements.txt`) or set RAG_VECTOR_STORE=faiss"


def collection_name(settings: Settings, embedding_model: str) -> str:
    """`RAG_MILVUS_COLLECTION`, or one derived from the corpus folder and the embedding model, so
    two corpora never share a collection: e.g. `rag_corpus_all_minilm_l6_v2_3f9a1c2b`."""
    if settings.milvus_collection:
        return settings.milvus_collection
    corpus = settings.corpus_dir.resolve()
    digest = hashlib.sha256(f"{corpus}\0{embedding_model}".encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "_", f"{corpus.name}_{embedding_model.split('/')[-1]}".lower()).strip("_")
    return f"rag_{slug[:150]}_{digest}"


def milvus_uri(settings: Settings) -> tuple[str, bool]:
    """The URI to connect to and whether it is a Milvus Lite file.

    `""` -> `("<index_dir>/milvus.db", True)`; `"http://127.0.0.1:19530"` -> (it, False).

    Raises:
        BadInputError: the URI is neither a `.db` path nor `http(s)://host:port`.
    """
    uri = settings.milvus_uri.strip() or str(settings.index_dir / "milvus.db")
    if "://" not in uri:
        if not uri.endswith(".db"):
            raise BadInputError(
                f"invalid setting: RAG_MILVUS_URI={uri!r}: a Milvus Lite file must end in .db "
                "(e.g. index/milvus.db), and a server is given as http://host:19530"
            )
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        return str(Path(uri).resolve()), True
    parsed = urlparse(uri)
    try:
        port = parsed.port
    except ValueError:
        port = -1
    if parsed.scheme not in ("http", "https", "tcp") or not parsed.hostname or port == -1:
        raise BadInputError(
            f"invalid setting: RAG_MILVUS_URI={uri!r}: give a Milvus server as http://host:19530 "
            "(or https://...), or a Milvus Lite file as a path ending in .db"
        )
    return uri, False


@contextmanager
def quiet_pymilvus() -> Iterator[None]:
    """Silence pymilvus' own loggers (it configures two, each with its own level) for a moment."""
    loggers = [logging.getLogger(n) for n in ("pymilvus", "pymilvus.milvus_client")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def error_reason(e: Exception) -> str:
    """What a pymilvus error says, for our messages: its `message`, else the first line of its text
    (a raw gRPC error's text runs to a dozen lines), else its type."""
    message = getattr(e, "message", "")
    if not message:
        lines = str(e).strip().splitlines()
        message = lines[0] if lines else ""
    return message[:300] or type(e).__name__


def client_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of pymilvus' `MilvusClient` for these settings (pymilvus 2.5).

    A CA certificate turns on TLS (`secure`, `server_pem_path`: one-way TLS, the server proves who it
    is); a database name is passed as `db_name`. Both are for a server: Milvus Lite has neither.

    Raises:
        BadInputError: a malformed URI; a database or CA given for Milvus Lite; a CA for an http:// URI;
            a CA file that does not exist.
    """
    uri, lite = milvus_uri(settings)
    opts: dict[str, Any] = {"uri": uri, "token": settings.milvus_token.get_secret_value(), "timeout": CONNECT_TIMEOUT}
    if settings.milvus_db_name:
        if lite:
            raise BadInputError(
                f"invalid setting: RAG_MILVUS_DB_NAME={settings.milvus_db_name!r}: Milvus Lite has one database; "
                "unset it, or set RAG_MILVUS_URI to a server (http://host:19530)"
            )
        opts["db_name"] = settings.milvus_db_name
    if settings.milvus_ca:
        ca = Path(settings.milvus_ca).expanduser()
        if lite or urlparse(uri).scheme != "https":
            raise BadInputError(
                f"invalid setting: RAG_MILVUS_CA is set but RAG_MILVUS_URI={uri!r} is not a TLS server: "
                "give the server as https://host:19530, or unset RAG_MILVUS_CA"
            )
        if not ca.is_file():
            raise BadInputError(
                f"invalid setting: RAG_MILVUS_CA={settings.milvus_ca!r}: no such file; give the path of the "
                "CA certificate (PEM) that signed the Milvus server's certificate"
            )
        opts |= {"secure": True, "server_pem_path": str(ca.resolve())}
    return opts


def connect(settings: Settings):
    """A `MilvusClient` for the configured URI, database and TLS certificate.

    Raises:
        BadInputError: as `client_options`. VectorStoreError: pymilvus missing or the server unreachable.
    """
    opts = client_options(settings)
    uri, lite = milvus_uri(settings)
    # milvus-lite 2.5.1 imports pkg_resources, which warns on every start
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise VectorStoreError(f"RAG_VECTOR_STORE=milvus needs the pymilvus package: {INSTALL_MILVUS}") from None
    try:
        with quiet_pymilvus():  # it logs its own error line on a failed connect; ours says more
            return MilvusClient(**opts)
    except Exception as e:
        reason = error_reason(e)
        what = f"open the Milvus Lite file {uri}" if lite else f"reach the Milvus server at {uri}"
        if lite:
            hint = "is another process using it? A Milvus Lite file is locked to one process"
        elif "database" in reason.lower():
            hint = f"check RAG_MILVUS_DB_NAME: the database {settings.milvus_db_name!r} must exist on the server"
        else:
            hint = "start it (see deploy/README.md), check RAG_MILVUS_URI and RAG_MILVUS_TOKEN"
            if settings.milvus_ca:
                hint += ", and that RAG_MILVUS_CA signed the certificate the server presents for that host name"
            hint += ", or set RAG_VECTOR_STORE=faiss"
        raise VectorStoreError(f"cannot {what} ({reason}): {hint}") from None


def make_store(settings: Settings, dim: int, embedding_model: str, client=None) -> VectorIndex:
    """An empty store of the configured kind, ready for `build`.

    Args:
        client: a Milvus client to use instead of connecting (tests hand in a wrapped one).
    """
    if settings.vector_store == "milvus":
        from rag.stores.milvus import MilvusIndex

        uri, _ = milvus_uri(settings)
        client = client if client is not None else connect(settings)
        name = collection_name(settings, embedding_model)
        try:
            return MilvusIndex(client, name, dim, uri, settings.milvus_index)
        except RagError:
            raise
        except Exception as e:  # connected, but the first call was refused (a missing database, no rights)
            raise VectorStoreError(
                f"the Milvus server at {uri} refused to look up the collection “{name}” ({error_reason(e)}): "
                "check RAG_MILVUS_TOKEN and RAG_MILVUS_DB_NAME"
            ) from None
    from rag.stores.faiss import FaissIndex

    return FaissIndex(dim, settings.faiss_index)


def load_store(folder: Path, manifest: dict[str, Any], settings: Settings | None = None, client=None) -> VectorIndex:
    """Open the store a saved build names in its manifest (`vector_store.kind`).

    Raises:
        IndexStaleError: a Milvus collection is missing, of another dimension, or out of step.
        VectorStoreError, BadInputError: as `connect`.
    """
    info = manifest.get("vector_store", {"kind": "faiss"})
    if info.get("kind") == "milvus":
        from rag.stores.milvus import MilvusIndex

        s = settings or Settings()
        uri, _ = milvus_uri(s)
        client = client if client is not None else connect(s)
        try:
            store = MilvusIndex(client, info["collection"], int(manifest["embedding_dim"]), uri, s.milvus_index, info)
            store.check(int(manifest["chunk_count"]))
        except RagError:
            raise
        except Exception as e:  # the server answered but refused: say what it said
            raise VectorStoreError(
                f"the Milvus collection “{info['collection']}” at {uri} cannot be read ({error_reason(e)}): "
                "rebuild it with `python -m rag index`, or check RAG_MILVUS_URI"
            ) from None
        return store
    from rag.stores.faiss import FaissIndex

    return FaissIndex.load(folder, info)
