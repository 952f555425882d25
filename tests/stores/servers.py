"""A real Milvus server on 127.0.0.1 for the integration tests, and a TLS proxy before it.

The server helpers live in `rag.evaluation.milvus_server` (the store-agreement evaluation starts
the same engine) and are re-exported here. The engine speaks no TLS, so `tls_proxy` terminates
TLS in front of it, as a load balancer would.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.evaluation.milvus_server import INSTALL_HINT, LITE_SERVER_VENV, free_port, lite_server, lite_server_binary

__all__ = [
    "INSTALL_HINT",
    "LITE_SERVER_VENV",
    "free_port",
    "lite_server",
    "lite_server_binary",
    "self_signed_cert",
    "tls_proxy",
]


def self_signed_cert(folder: Path, name: str = "server") -> tuple[Path, Path] | None:
    """A certificate for localhost and 127.0.0.1 that is its own CA, and its key; None without `openssl`."""
    if shutil.which("openssl") is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@contextmanager
def tls_proxy(target_port: int, cert: Path, key: Path) -> Iterator[int]:
    """Accept TLS on 127.0.0.1:<free port> (offering ALPN h2, which gRPC requires) and pass the bytes
    on to 127.0.0.1:`target_port` in the clear; yields the port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except asyncio.CancelledError:  # at shutdown; ending normally spares 3.11's stream callback an error
            up_writer.close()
            writer.close()

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def shutdown() -> None:
        server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
