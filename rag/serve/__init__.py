"""The serving half: the HTTP API, the OpenAI-compatible route, the browser chat, and what they
share (JSON errors, Prometheus metrics, feedback, the thread bridge to the blocking pipeline).

Everything here receives a built `RagPipeline`; nothing here retrieves, generates or checks.
`rag.serve.server.build_app` composes the whole app; `app.py` runs it.
"""
