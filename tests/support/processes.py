"""Processes a test started in a session of their own (`start_new_session=True`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to the process group the test started (a server and its reloader child too), SIGKILL if it has not
    ended within `timeout` seconds; waits for it either way."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def start_server(
    command: list[str], port: int, *, env: dict[str, str], cwd: Path, log: Path, timeout: float = 60
) -> subprocess.Popen:
    """Start a serving command of the venv (`flask run …`, `dailyfeed serve`) on `port`, in a session of its own
    with its output in `log`, and wait until it answers `/healthz`; stopped (stop_group) if it does not."""
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name(command[0])), *command[1:], "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    return process
            except (requests.ConnectionError, requests.Timeout):  # not bound yet; bound, still loading the app
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    except BaseException:
        stop_group(process, timeout=15)
        raise
