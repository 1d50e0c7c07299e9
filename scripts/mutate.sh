#!/usr/bin/env bash
# `make mutate`: mutation testing (mutmut 3, configured in setup.cfg [mutmut]) of the core modules against the
# fast tiers, then the score per module. Slow (tens of minutes); not part of `make test`.
#   make mutate                              every core module
#   make mutate MODULES="circuit events"     some of them (events circuit publishing service claims outbox)
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
# shellcheck disable=SC2086
if [ -n "${SURVIVORS:-}" ]; then
    mapfile -t patterns < <("$BIN/python" scripts/mutation_scores.py --survivor-names ${MODULES:-})
    if [ "${#patterns[@]}" = 0 ]; then
        echo "mutate: no survivors to run again"; "$BIN/python" scripts/mutation_scores.py; exit 0
    fi
else
    mapfile -t patterns < <("$BIN/python" scripts/mutation_scores.py --patterns ${MODULES:-})
fi
"$BIN/mutmut" run --max-children "${MUTATE_CHILDREN:-1}" "${patterns[@]}" > mutants.log 2>&1 || {
    status=$?; tail -n 40 mutants.log; echo "mutate: mutmut failed (exit $status); full log in mutants.log"; exit $status; }
"$BIN/python" scripts/mutation_scores.py --survivors
