"""Telemetry: every metric (metrics.py), W3C trace context (tracing.py) and log formatting (logs.py).

A leaf: the write path, the listener and the restore jobs import it, and it imports no Flask and no other part of
dailyfeed but the shared language (events, config). The endpoints that expose it live in dailyfeed.ops.
"""
