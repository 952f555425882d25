"""Vector stores behind one seam: FAISS in the process (default) or a Milvus engine.

`rag.stores.factory` picks the class from `Settings.vector_store`; each backend is one file.
"""

from rag.stores.base import VectorIndex, chunk_key, chunk_keys

__all__ = ["VectorIndex", "chunk_key", "chunk_keys"]
