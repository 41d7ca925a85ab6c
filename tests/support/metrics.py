"""Helpers for the tests of metrics: /metrics scraped through the test client, as Prometheus reads it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Each sample of a Prometheus text exposition by its ``key``."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def scrape(client, **headers) -> dict:
    """The samples /metrics answers the Flask test client ``client`` with; fails the test unless it answers 200."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return samples_of(response.get_data(as_text=True))


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A sample's name and labels, as ``samples_of`` keys them."""
    return name, tuple(sorted(labels.items()))
