"""Every metric declared in dailyfeed/ops/metrics.py is in the README's table, with the name a scrape shows."""

from pathlib import Path

from prometheus_client import Counter, Histogram

from dailyfeed.telemetry import metrics


def declared() -> set[str]:
    names = {
        value
        for key, value in vars(metrics).items()
        if key.isupper() and isinstance(value, str) and value.startswith("dailyfeed_")
    }
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            names.add(value._name + "_total")
        elif isinstance(value, Histogram):
            names.add(value._name)
    return names


def test_readme_lists_every_metric():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    names = declared()
    assert len(names) >= 19 and all(name.startswith("dailyfeed_") for name in names)
    assert sorted(name for name in names if f"| `{name}` |" not in readme) == []
