"""Start and stop a real Milvus server on 127.0.0.1 for the integration tests, and a TLS proxy before it.

The server is the C++ engine that `milvus-lite` 2.5.1 ships, serving gRPC on a port we give it,
installed into its own virtual environment by `make milvus-servers` (its pins clash with the
app's). Each test session starts its own process with its own data folder and stops it by pid.
The engine speaks no TLS, so `tls_proxy` terminates TLS in front of it, as a load balancer would.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uk-ai-rag" / "milvus-servers"
LITE_SERVER_VENV = CACHE / "lite-2.5.1"
INSTALL_HINT = f"no Milvus server in {LITE_SERVER_VENV}: run `make milvus-servers` to install it"


def lite_server_binary() -> Path | None:
    found = sorted(LITE_SERVER_VENV.glob("lib/python3*/site-packages/milvus_lite/lib/milvus"))
    return found[0] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def lite_server(data_dir: Path, ready_s: float = 20.0) -> Iterator[str]:
    """Run the Milvus engine on 127.0.0.1:<free port>; yields its URI and stops it afterwards."""
    binary = lite_server_binary()
    if binary is None:
        raise FileNotFoundError(INSTALL_HINT)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parent)}
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [str(binary), str(data_dir / "server.db"), f"127.0.0.1:{port}", "ERROR"],
        cwd=data_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the Milvus server exited with {proc.returncode}: see {data_dir / 'server.log'}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the Milvus server did not listen on port {port} in {ready_s} s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


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
