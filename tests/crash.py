"""Run a Python script in a child process until it reports reaching a named point, then SIGKILL it.

The scripts print "AT <point>" when they get there and then sleep; the crash tests check what a
restart finds afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def kill_at(script: str, args: list[str], point: str) -> None:
    """Run `script` with `args` until it prints "AT `point`", then kill it with SIGKILL.

    Fails when the script ends or prints anything else first; a script that never gets there is
    killed after 120 s so it cannot hang the run.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    timer = threading.Timer(120, proc.kill)
    timer.start()
    try:
        line = proc.stdout.readline()
        if line.startswith("AT "):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        timer.cancel()
    assert line.strip() == f"AT {point}", f"the script did not reach {point}: {line!r} {proc.stderr.read()[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
