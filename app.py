"""Run the browser chat and the HTTP API: `python app.py`, then open http://127.0.0.1:7860/.

The page says the model is loading while this process builds (or checks) the index, loads the
model and warms it with one short generation; then the chat appears at "/" and the API beside it.
Host and port come from RAG_HOST and RAG_PORT.
"""

from __future__ import annotations

import logging
import os
import threading

import uvicorn

from rag.errors import RagError
from rag.pipeline import RagPipeline
from rag.serve.http_api import cors_origins
from rag.serve.server import WarmupApp, build_app, uvicorn_options
from rag.settings import Settings
from rag.stores.faiss import serve_queries_singly

log = logging.getLogger("app")


def load(server: WarmupApp, settings: Settings) -> None:
    """Build and warm the pipeline, then hand the full app to the running server."""
    try:
        pipeline = RagPipeline.from_settings(settings, rebuild_index=True)
        if settings.vector_store == "faiss":
            serve_queries_singly()  # after any rebuild, which uses every core
        pipeline.warm()
        server.ready(build_app(pipeline, settings))
    except RagError as e:
        log.error("could not start: %s", e)
        server.failed(str(e))
    except Exception:
        log.exception("could not start")
        server.failed("an unexpected error stopped the app from starting; the server log has the details.")


def main() -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from an offline app
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load()
    except RagError as e:
        raise SystemExit(f"error: {e}") from None
    server = WarmupApp(cors_origins(settings))  # a widget on a listed site reads the 503s while loading
    threading.Thread(target=load, args=(server, settings), name="load-model", daemon=True).start()
    log.info("serving on http://%s:%d/ (the page shows progress while the model loads)", settings.host, settings.port)
    uvicorn.run(server, log_level="info", **uvicorn_options(settings))


if __name__ == "__main__":
    main()
