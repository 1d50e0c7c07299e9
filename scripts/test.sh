#!/usr/bin/env bash
# `make test`: every test tier. Starts the real services (Kafka, FerretDB) when this machine can build and run
# them, and stops what it started, also on failure. Where it cannot, it runs the other tiers and says plainly
# which tier was skipped and why. Under CI (CI=true) a service that cannot start is a failure, not a skip.
#   --integration-only   run only the integration tier
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
ONLY_INTEGRATION=0
[ "${1:-}" = "--integration-only" ] && ONLY_INTEGRATION=1
UNDER_CI=0
[ "${CI:-}" = "true" ] && UNDER_CI=1

say() { echo "test: $*"; }
STARTED=0
cleanup() {
    if [ "$STARTED" = 1 ]; then
        say "stopping the services this run started"
        bash scripts/services.sh stop all || true
    fi
}
trap cleanup EXIT

say "lint (ruff check, ruff format --check)"
if ! "$BIN/ruff" check .; then
    say "FAILED: ruff found problems (make lint)"
    exit 1
fi
if ! "$BIN/ruff" format --check .; then
    say "FAILED: files not in the project's format (make format writes it)"
    exit 1
fi

# The browser tier's Chromium (Debian's package). Under CI a browser that cannot be installed fails the run (the
# tier's fixtures also fail, not skip, when it cannot start); locally that tier is skipped with the reason.
if ! bash scripts/install-browser.sh; then
    if [ "$UNDER_CI" = 1 ]; then
        say "FAILED: CI needs the browser tier, and Chromium could not be installed (scripts/install-browser.sh)"
        exit 1
    fi
    say "browser tier will be SKIPPED: Chromium could not be installed (scripts/install-browser.sh)"
fi

SKIP_REASON=""
if [ -n "${DAILYFEED_MONGO_URI:-}" ] && [ -n "${DAILYFEED_KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    say "using the services named by DAILYFEED_MONGO_URI and DAILYFEED_KAFKA_BOOTSTRAP_SERVERS"
else
    bash scripts/services.sh check all >/dev/null 2>&1
    check=$?
    if [ "$check" = 3 ]; then
        SKIP_REASON="java, mvn or go is missing on this machine ($(bash scripts/services.sh check all 2>&1 | tail -1))"
    elif bash scripts/services.sh status all >/dev/null 2>&1; then
        say "the services are already running; using them and leaving them running"
    else
        STARTED=1  # before starting: a start that fails half-way must still be stopped by the trap
        if ! bash scripts/services.sh start all; then
            SKIP_REASON="the services failed to start (see the log tail above)"
        fi
    fi
    if [ -z "$SKIP_REASON" ]; then
        eval "$(bash scripts/services.sh env)"
        export DAILYFEED_MONGO_URI DAILYFEED_KAFKA_BOOTSTRAP_SERVERS
    fi
fi

# promtool (for the alert rules' tests) is built here, before pytest: its first build from the Go module proxy takes
# minutes, longer than pytest's per-test time-out. The tests find it built; under CI a failed build fails them.
if [ -z "$SKIP_REASON" ] && command -v go >/dev/null 2>&1; then
    say "promtool (scripts/services.sh promtool)"
    bash scripts/services.sh promtool >/dev/null || say "promtool could not be built; its tests will say why"
fi

if [ -n "$SKIP_REASON" ]; then
    if [ "$UNDER_CI" = 1 ]; then
        say "FAILED: CI needs the real services: $SKIP_REASON"
        exit 1
    fi
    if [ "$ONLY_INTEGRATION" = 1 ]; then
        say "cannot run the integration tier: $SKIP_REASON"
        exit 1
    fi
    say "integration tier SKIPPED: $SKIP_REASON; running the unit, api and e2e tiers on the embedded store"
    "$BIN/pytest" -m "not integration"
    status=$?
else
    if [ "$ONLY_INTEGRATION" = 1 ]; then
        "$BIN/pytest" -m integration
    else
        "$BIN/pytest"
    fi
    status=$?
fi

if [ "$status" = 5 ]; then
    say "FAILED: pytest collected no tests"
    exit 1
fi
[ -n "$SKIP_REASON" ] && say "reminder: the integration tier was skipped: $SKIP_REASON"
exit "$status"
