"""The log-scale histograms: every percentile within the stated relative error of the exact one."""

import json
import math
import random

import pytest
from django.db import connection

from analytics.histograms import RELATIVE_ERROR_BOUND, histogram_of, merged, percentile


def exact(values: list[float], q: float) -> float:
    """Nearest rank, as the histograms define it."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("q", [1, 50, 90, 95, 99, 100])
def test_percentiles_are_within_two_percent_of_the_exact_ones(seed, q):
    rng = random.Random(seed)
    values = [rng.lognormvariate(6, 2) for _ in range(5000)]  # ms, from under a ms to hours

    answer = percentile(histogram_of(values), q)

    assert RELATIVE_ERROR_BOUND <= 0.02
    assert abs(answer - exact(values, q)) <= RELATIVE_ERROR_BOUND * exact(values, q)


def test_merging_histograms_is_counting_the_values_together():
    rng = random.Random(7)
    left, right = [rng.uniform(1, 100) for _ in range(300)], [rng.uniform(50, 5000) for _ in range(700)]
    assert merged(histogram_of(left), histogram_of(right)) == histogram_of(left + right)


def test_zero_and_empty():
    assert percentile({}, 50) is None
    assert percentile(histogram_of([0, 0, 0, 10]), 50) == 0
    assert percentile(histogram_of([0, 10]), 100) == pytest.approx(10, rel=0.02)


@pytest.mark.django_db
def test_the_databases_histograms_are_the_same_as_pythons():
    rng = random.Random(11)
    values = [rng.lognormvariate(6, 3) for _ in range(2000)] + [0.0, 0.0005, 1.0]
    left, right = values[:700], values[700:]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT analytics_histogram(%s::float8[]), analytics_histogram_merge("
            "analytics_histogram(%s::float8[]), analytics_histogram(%s::float8[])), analytics_histogram('{}')",
            [values, left, right],
        )
        made, merged_there, empty = (json.loads(value) for value in cursor.fetchone())

    assert made == histogram_of(values)
    assert merged_there == merged(histogram_of(left), histogram_of(right)) == made
    assert empty == {}
