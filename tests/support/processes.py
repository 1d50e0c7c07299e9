"""Processes a test started in a session of their own (`start_new_session=True`)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to the process group the test started (a server and its reloader child too), SIGKILL if it has not
    ended within `timeout` seconds; waits for it either way."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def start_serve(directory: Path, name: str, env: dict[str, str], port: int,
                *args: str) -> tuple[subprocess.Popen, str, Path]:
    """`dailyfeed serve --port PORT ARGS` in a session of its own (stop it with stop_group), its output in
    directory/NAME.log; returns the process, its base URL and the log's path."""
    log = directory / f"{name}.log"
    with open(log, "w") as out:
        process = subprocess.Popen([str(Path(sys.executable).with_name("dailyfeed")), "serve", "--port", str(port),
                                    *args], env=env, cwd=directory, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return process, f"http://127.0.0.1:{port}", log


def wait_ready(process: subprocess.Popen, base: str, log: Path, timeout: float = 90) -> None:
    """Until `base`/readyz answers 200; fails with the server's output when it exits or the timeout passes."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"the server exited:\n{log.read_text()}"
        try:
            if requests.get(f"{base}/readyz", timeout=3).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"not ready within {timeout:.0f} s:\n{log.read_text()}"
        time.sleep(0.2)
