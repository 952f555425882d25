"""Start and stop a real Milvus server on 127.0.0.1: the C++ engine that `milvus-lite` 2.5.1 ships,
serving gRPC on a port we give it, for the store-agreement evaluation and the integration tests.

`make milvus-servers` installs it into its own virtual environment (its pins clash with the app's).
Each caller starts its own process with its own data folder and stops it by pid. This module does
not install anything, and the app never uses it: the app connects to the server `RAG_MILVUS_URI` names.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uk-ai-rag" / "milvus-servers"
LITE_SERVER_VENV = CACHE / "lite-2.5.1"
INSTALL_HINT = f"no Milvus server in {LITE_SERVER_VENV}: run `make milvus-servers` to install it"


def lite_server_binary() -> Path | None:
    """The engine binary `make milvus-servers` installed, or None."""
    found = sorted(LITE_SERVER_VENV.glob("lib/python3*/site-packages/milvus_lite/lib/milvus"))
    return found[0] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def lite_server(data_dir: Path, ready_s: float = 20.0) -> Iterator[str]:
    """Run the Milvus engine on 127.0.0.1:<free port>; yields its URI and stops it afterwards.

    Args:
        data_dir: its database file and `server.log` go here (created if needed).
        ready_s: how long to wait for it to listen.

    Raises:
        FileNotFoundError: the engine is not installed (the message says how to install it).
        RuntimeError, TimeoutError: it exited, or did not listen in `ready_s` (see `server.log`).
    """
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
