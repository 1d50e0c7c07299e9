"""Print mutmut's results per core module: killed/total and the score (`make mutate` runs this after mutmut).

mutmut 3 keeps each mutated file's results in mutants/<path>.meta (mutant name -> exit code of the test run).
A mutant counts as killed when the tests failed or timed out on it; "no tests" counts as survived (nothing ran
it). Modules that only the integration tier covers (INTEGRATION_ONLY) are mutated in a run of their own
(`--integration`; the default run leaves them out): the fast tiers first, then their survivors against the real
services with the test files INTEGRATION_ONLY names for the module (the rest of the integration tier would cost
minutes a mutant without reaching it).

    python scripts/mutation_scores.py [--survivors] [--min 90]
    python scripts/mutation_scores.py --patterns [events circuit publishing service claims outbox]
    python scripts/mutation_scores.py --patterns [--integration] [MODULE ...]
    python scripts/mutation_scores.py [--integration] --survivor-names [MODULE ...]
    python scripts/mutation_scores.py --integration-tests [MODULE ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"

# (label, mutated file, mutmut name patterns of the scored functions; None = every mutant of the file)
MODULES = (
    ("events", "dailyfeed/events.py", None),
    ("circuit", "dailyfeed/transport/circuit.py", None),
    ("publishing", "dailyfeed/content/publishing.py", None),
    ("service", "dailyfeed/content/service.py", None),
    ("claims", "dailyfeed/deadletters/claims.py", None),  # the claim/lease protocol, a module of its own now
    ("outbox", "dailyfeed/content/outbox.py", None),  # the event publication registry and its relay (issue 18)
    ("types", "dailyfeed/types.py", None),
    ("auth", "dailyfeed/auth.py", None),
    ("tokens", "dailyfeed/tokens.py", None),
    ("http", "dailyfeed/transport/http.py", None),
    ("kafka", "dailyfeed/transport/kafka.py", None),
    ("loop", "dailyfeed/transport/loop.py", None),  # the thread every publish is handed to and waits on
    ("deadletter-store", "dailyfeed/deadletters/store.py", None),  # how a failure is kept
    ("listener", "dailyfeed/activity/listener.py", None),  # the consume loop
    ("activity-service", "dailyfeed/activity/service.py", None),
    ("restore-jobs", "dailyfeed/restore/jobs.py", None),
    ("bulk", "dailyfeed/deadletters/bulk.py", None),  # bulk dead-letter changes
    ("actions", "dailyfeed/restore/actions.py", None),  # the dead-letter actions of CLI, API and console
    ("tasks", "dailyfeed/restore/tasks.py", None),  # replay tasks
    ("redrive", "dailyfeed/restore/redrive.py", None),  # self-healing redrive
)
# Only the integration tier reaches these with a real counterpart (a broker that acknowledges, fails, freezes), and
# the test files of that tier that reach them: the transport contract on the shared and a private broker, publishing
# end to end, a killed broker, and readiness (check_connected) through an outage.
INTEGRATION_ONLY = {
    "kafka": (
        "tests/transport",
        "tests/integration/test_kafka_delivery.py",
        "tests/integration/test_kafka_broker_faults.py",
        "tests/integration/test_ops_broker_outage.py",
    ),
}
KILLED = {1, 3, 36, 24, -24, 152, 255}  # failed, pytest internal error (a kill), timeouts
NOT_RUN = {None, 34, 2}  # not checked yet, skipped, interrupted


def function_of(mutant: str) -> str:
    """`pkg.mod.xǁClassǁmethod__mutmut_3` or `pkg.mod.x_function__mutmut_3` -> `method` / `function`."""
    name = mutant.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    return name.split("ǁ")[-1] if "ǁ" in name else name[2:]


def selected(label: str, labels=(), integration: bool = False) -> bool:
    """Whether a module is among those named, or with none named, of the tier (fast, or integration-only)."""
    return label in labels if labels else (label in INTEGRATION_ONLY) == integration


def mutmut_patterns(labels=(), integration: bool = False) -> list[str]:
    """Mutant name patterns for `mutmut run`: every scored function of the modules named (default: all those of
    the tier, the fast one or with `integration` the integration-only modules)."""
    patterns = []
    for label, path, functions in MODULES:
        if not selected(label, labels, integration):
            continue
        module = path[:-3].replace("/", ".")
        if functions is None:
            patterns.append(f"{module}.*")
        else:
            for function in functions:
                patterns.append(f"{module}.x_{function}__mutmut_*")
                patterns.append(f"{module}.xǁ*ǁ{function}__mutmut_*")
    return patterns


def results(path: str, functions) -> dict[str, int | None]:
    meta = MUTANTS / f"{path}.meta"
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: code for name, code in codes.items() if functions is None or function_of(name) in functions}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants of each module")
    parser.add_argument("--min", type=float, default=None, help="exit 1 when a module scores below this %%")
    parser.add_argument(
        "--patterns",
        nargs="*",
        metavar="MODULE",
        default=None,
        help="print the mutant name patterns for `mutmut run` (of these modules; default all of the tier)",
    )
    parser.add_argument(
        "--integration",
        action="store_true",
        help="with --patterns: the run has the integration tier, so the integration-only modules "
        "may be named (and are the default)",
    )
    parser.add_argument(
        "--survivor-names",
        nargs="*",
        metavar="MODULE",
        default=None,
        help="print the names of the mutants that survived the last run (of these modules; default all of the tier)",
    )
    parser.add_argument(
        "--integration-tests",
        nargs="*",
        metavar="MODULE",
        default=None,
        help="print the test files that reach these integration-only modules on the real services (default all)",
    )
    args = parser.parse_args(argv)
    if args.integration_tests is not None:
        unknown = set(args.integration_tests) - set(INTEGRATION_ONLY)
        if unknown:
            parser.error(f"{sorted(unknown)}: not integration-only; those are {sorted(INTEGRATION_ONLY)}")
        paths = (path for label in args.integration_tests or INTEGRATION_ONLY for path in INTEGRATION_ONLY[label])
        print("\n".join(dict.fromkeys(paths)))
        return 0
    if args.survivor_names is not None:
        for label, path, functions in MODULES:
            if selected(label, args.survivor_names, args.integration):
                for name, code in results(path, functions).items():
                    if code not in KILLED and code not in NOT_RUN:
                        print(name)
        return 0
    if args.patterns is not None:
        unknown = set(args.patterns) - {label for label, _, _ in MODULES}
        if unknown:
            parser.error(f"unknown module(s) {sorted(unknown)}; known: {[label for label, _, _ in MODULES]}")
        untestable = set(args.patterns) & set(INTEGRATION_ONLY) if not args.integration else set()
        if untestable:
            parser.error(
                f"{sorted(untestable)}: only the integration tier covers it; run with MUTATE_INTEGRATION=1 "
                f'and the services\' env (eval "$(bash scripts/services.sh env)")'
            )
        print("\n".join(mutmut_patterns(args.patterns, args.integration)))
        return 0
    below = False
    print(f"{'module':<52}{'killed':>8}{'total':>8}{'score':>9}{'not run':>9}")
    for label, path, functions in MODULES:
        codes = results(path, functions)
        run = {name: code for name, code in codes.items() if code not in NOT_RUN}
        killed = sorted(name for name, code in run.items() if code in KILLED)
        survived = sorted(
            (name for name in run if name not in killed),
            key=lambda n: (n.rsplit("__mutmut_", 1)[0], int(n.rsplit("_", 1)[-1])),
        )
        score = 100.0 * len(killed) / len(run) if run else 0.0
        below |= args.min is not None and score < args.min
        print(f"{label + ' (' + path + ')':<52}{len(killed):>8}{len(run):>8}{score:>8.1f}%{len(codes) - len(run):>9}")
        if args.survivors:
            for name in survived:
                print(f"    survived: {name}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
