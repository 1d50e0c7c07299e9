"""Reading a Prometheus exposition in tests: the value of one series, or the sum of a family's series."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the series `name{labels}` (exactly those labels), or None when it is not there."""
    for sample in samples(text):
        if sample.name == name and sample.labels == labels:
            return sample.value
    return None


def total(text: str, name: str, **labels: str) -> float | None:
    """The sum over the series of `name` having `labels` (and any others); None when there is none."""
    found = [s.value for s in samples(text) if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(found) if found else None
