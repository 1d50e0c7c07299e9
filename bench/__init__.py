"""Benchmarks of dailyfeed against the real services: `make bench` (bench/run.sh). See docs/benchmarks.md."""
