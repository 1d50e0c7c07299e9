"""Processes a test started in a session of their own (`start_new_session=True`)."""
from __future__ import annotations

import os
import signal
import subprocess


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to the process group the test started (a server and its reloader child too), SIGKILL if it has not
    ended within `timeout` seconds; waits for it either way."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
