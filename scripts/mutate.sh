#!/usr/bin/env bash
# `make mutate`: mutation testing (mutmut 3, configured in setup.cfg [mutmut]) of the core modules against the
# fast tiers, then the score per module. Slow (tens of minutes); not part of `make test`.
#   make mutate                              every core module the fast tiers cover
#   make mutate MODULES="circuit events"     some of them, one at a time is best (`python scripts/mutation_scores.py
#                                            --help`; events circuit publishing service claims outbox types auth tokens
#                                            http loop deadletter-store listener activity-service restore-jobs bulk
#                                            actions tasks redrive)
#   make mutate MUTATE_INTEGRATION=1         the modules only the integration tier covers (kafka), in two passes:
#                                            the fast tiers first, then what survived them against the real
#                                            services (first `eval "$(bash scripts/services.sh env)"`), with only
#                                            the tests that reach the module there (`mutation_scores.py
#                                            --integration-tests kafka`; MUTATE_TESTS="tests/x ..." to choose others)
#   make mutate MUTATE_CHILDREN=2            more parallel test runs (default 1: the machine is shared)
#   make mutate SURVIVORS=1                  only the mutants that survived the last run (after adding tests)
# Results stay in mutants/ (git-ignored); the mutants named on the command line are always run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
# It copies the package's other files (templates, static files) only into a new mutants/: bring them up to date.
if [ -d mutants/dailyfeed ]; then
    (cd dailyfeed && find . -type f ! -name '*.py' ! -path '*/__pycache__/*' -exec cp --parents {} ../mutants/dailyfeed/ \;)
fi
# The tier goes in PYTEST_ADDOPTS (setup.cfg [mutmut] leaves it out): the fast tiers, or in the second pass of
# MUTATE_INTEGRATION=1 every tier but e2e and the fuzz tier, against the services whose addresses the environment
# names, restricted to the test files that reach the module there.
fast_tier="${PYTEST_ADDOPTS:-} -m 'not integration'"

# pytest options that leave out every test file but those at or under the paths given (the private brokers and
# end-to-end apps of the other integration tests would cost minutes a mutant without reaching the module).
only_tests() {
    local file path keep
    while IFS= read -r file; do
        keep=
        for path in "$@"; do
            if [ "$file" = "${path%/}" ] || [[ "$file" == "${path%/}"/* ]]; then keep=1; fi
        done
        [ -n "$keep" ] || printf -- ' --ignore=%s' "$file"
    done < <(find tests -name 'test_*.py' | sort)
}

# mutmut over the mutants named ($@); the time it took is added to $took (seconds).
took=0
mutate() {
    local started status
    started=$(date +%s)
    # mutmut 3 records which tests run which function once, and afterwards only for tests with new names: a test
    # changed since would keep its old coverage and its new kills would go unseen (and each pass has tests of its
    # own). Record it afresh every run.
    rm -f mutants/mutmut-stats.json
    "$BIN/mutmut" run --max-children "${MUTATE_CHILDREN:-1}" "$@" >> mutants.log 2>&1 || {
        status=$?; tail -n 40 mutants.log; echo "mutate: mutmut failed (exit $status); full log in mutants.log"
        exit $status; }
    took=$((took + $(date +%s) - started))
}
: > mutants.log

tier=()
if [ -n "${MUTATE_INTEGRATION:-}" ]; then
    tier=(--integration)
    if [ -z "${DAILYFEED_KAFKA_BOOTSTRAP_SERVERS:-}" ] || [ -z "${DAILYFEED_MONGO_URI:-}" ]; then
        echo "mutate: MUTATE_INTEGRATION=1 needs the services: bash scripts/services.sh start all &&" \
             'eval "$(bash scripts/services.sh env)"' >&2
        exit 2
    fi
    # The tests' private brokers (tests/support/kafka.py) run from mutants/: point them at the jars resolved here.
    export DAILYFEED_SERVICES_DIR="${DAILYFEED_SERVICES_DIR:-$PWD/.services}"
fi
# shellcheck disable=SC2086
if [ -n "${SURVIVORS:-}" ]; then
    names=$("$BIN/python" scripts/mutation_scores.py "${tier[@]}" --survivor-names ${MODULES:-})
    if [ -z "$names" ]; then
        echo "mutate: no survivors to run again"; "$BIN/python" scripts/mutation_scores.py; exit 0
    fi
else
    names=$("$BIN/python" scripts/mutation_scores.py "${tier[@]}" --patterns ${MODULES:-})
fi
mapfile -t patterns <<< "$names"
# The fast tiers kill what they can in seconds a mutant; with MUTATE_INTEGRATION=1 this is the first pass.
PYTEST_ADDOPTS="$fast_tier" mutate "${patterns[@]}"
# shellcheck disable=SC2086
if [ -n "${MUTATE_INTEGRATION:-}" ]; then
    # The second pass: what survived the fast tiers, against the real services.
    names=$("$BIN/python" scripts/mutation_scores.py "${tier[@]}" --survivor-names ${MODULES:-})
    if [ -n "$names" ]; then
        mapfile -t patterns <<< "$names"
        if [ -n "${MUTATE_TESTS:-}" ]; then
            read -r -a tests <<< "$MUTATE_TESTS"
        else
            mapfile -t tests < <("$BIN/python" scripts/mutation_scores.py --integration-tests ${MODULES:-})
        fi
        echo "mutate: the fast tiers left ${#patterns[@]} survivors; against the real services with ${tests[*]}"
        PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-}$(only_tests "${tests[@]}")" mutate "${patterns[@]}"
    fi
fi
echo "mutate: ${MODULES:-every module of the tier} took $(( (took + 30) / 60 )) min"
"$BIN/python" scripts/mutation_scores.py --survivors
