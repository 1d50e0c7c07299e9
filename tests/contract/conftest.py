"""The contract tier: the documents the app serves, and the schema fuzzing driven by /openapi.json."""

import pytest

#: Figures of the fuzz tier, printed at the end of the session (cases run, operations covered, ...).
FIGURES: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("contract fuzz figures")
        for name, line in FIGURES.items():
            terminalreporter.write_line(f"{name}: {line}")


@pytest.fixture
def figures():
    return FIGURES
