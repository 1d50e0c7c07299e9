#!/usr/bin/env bash
# make bench: the benchmarks against the real Kafka and FerretDB (see docs/benchmarks.md).
#
#   bash bench/run.sh [--quick] [--scale X] [--reps N] [--only ingest,write,restore,outbox,flat,read,scale] [--write-docs]
#   BENCH_SCALE=0.5 make bench          # smaller N everywhere;  BENCH_WRITE_DOCS=1 make bench  # update the docs
#   BENCH_MODULE=bench.feed bash bench/run.sh [args]   # another bench module with the same services (make capacity-measure)
#
# Uses the services if `scripts/services.sh status` says they run; otherwise starts the missing ones and stops,
# on any exit, only those it started. Never touches a service it did not start.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
PY="${VENV:-.venv}/bin/python"
SERVICES=scripts/services.sh

started=()
cleanup() {
    local svc
    for svc in "${started[@]}"; do
        echo "bench: stopping $svc (started by this run)"
        bash "$SERVICES" stop "$svc" || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for svc in kafka mongo; do
    if ! bash "$SERVICES" status "$svc" >/dev/null 2>&1; then
        echo "bench: $svc is not running; starting it for this run"
        bash "$SERVICES" start "$svc"
        started+=("$svc")
    fi
done
eval "$(bash "$SERVICES" env)"

# The bench extra: the profilers (docs/benchmarks.md) and FastStream, the peer of row 2p. Without it the bench
# goes on: the peer's rows say they failed, the other figures are measured.
if ! "$PY" -c 'import pyinstrument, faststream.kafka' 2>/dev/null; then
    "${VENV:-.venv}/bin/pip" install --quiet -e '.[bench]' || echo "bench: could not install the bench extra (profilers, FastStream); going on"
fi

"$PY" -m "${BENCH_MODULE:-bench.harness}" "$@"
