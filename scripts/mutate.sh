#!/usr/bin/env bash
# `make mutate`: mutation testing (mutmut 3, configured in setup.cfg [mutmut]) of the core modules against the
# fast tiers, then the score per module. Slow (tens of minutes); not part of `make test`.
#   make mutate                              every core module the fast tiers cover
#   make mutate MODULES="circuit events"     some of them, one at a time is best (`python scripts/mutation_scores.py
#                                            --help`; events circuit publishing service claims outbox types auth tokens
#                                            http deadletter-store listener activity-service restore-jobs bulk
#                                            actions tasks redrive)
#   make mutate MUTATE_INTEGRATION=1         the modules only the integration tier covers (kafka), against the real
#                                            services: first `eval "$(bash scripts/services.sh env)"`
#   make mutate MUTATE_CHILDREN=2            more parallel test runs (default 1: the machine is shared)
#   make mutate SURVIVORS=1                  only the mutants that survived the last run (after adding tests)
# Results stay in mutants/ (git-ignored); the mutants named on the command line are always run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
# mutmut 3 records which tests run which function once, and afterwards only for tests with new names: a test
# changed since would keep its old coverage and its new kills would go unseen. Record it afresh every run.
rm -f mutants/mutmut-stats.json
# It copies the package's other files (templates, static files) only into a new mutants/: bring them up to date.
if [ -d mutants/dailyfeed ]; then
    (cd dailyfeed && find . -type f ! -name '*.py' ! -path '*/__pycache__/*' -exec cp --parents {} ../mutants/dailyfeed/ \;)
fi
# The tier goes in PYTEST_ADDOPTS (setup.cfg [mutmut] leaves it out): the fast tiers, or with MUTATE_INTEGRATION=1
# every tier but e2e and the fuzz tier, against the services whose addresses the environment names.
tier=()
if [ -n "${MUTATE_INTEGRATION:-}" ]; then
    tier=(--integration)
    if [ -z "${DAILYFEED_KAFKA_BOOTSTRAP_SERVERS:-}" ] || [ -z "${DAILYFEED_MONGO_URI:-}" ]; then
        echo "mutate: MUTATE_INTEGRATION=1 needs the services: bash scripts/services.sh start all &&" \
             'eval "$(bash scripts/services.sh env)"' >&2
        exit 2
    fi
    export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-}"
    # The tests' private brokers (tests/support/kafka.py) run from mutants/: point them at the jars resolved here.
    export DAILYFEED_SERVICES_DIR="${DAILYFEED_SERVICES_DIR:-$PWD/.services}"
else
    export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} -m 'not integration'"
fi
# shellcheck disable=SC2086
if [ -n "${SURVIVORS:-}" ]; then
    names=$("$BIN/python" scripts/mutation_scores.py --survivor-names ${MODULES:-})
    mapfile -t patterns <<< "$names"
    if [ -z "$names" ]; then
        echo "mutate: no survivors to run again"; "$BIN/python" scripts/mutation_scores.py; exit 0
    fi
else
    names=$("$BIN/python" scripts/mutation_scores.py --patterns "${tier[@]}" ${MODULES:-})
    mapfile -t patterns <<< "$names"
fi
started=$(date +%s)
"$BIN/mutmut" run --max-children "${MUTATE_CHILDREN:-1}" "${patterns[@]}" > mutants.log 2>&1 || {
    status=$?; tail -n 40 mutants.log; echo "mutate: mutmut failed (exit $status); full log in mutants.log"; exit $status; }
echo "mutate: ${MODULES:-every module of the tier} took $(( ($(date +%s) - started + 30) / 60 )) min"
"$BIN/python" scripts/mutation_scores.py --survivors
