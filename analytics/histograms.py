"""Fixed log-scale histograms: durations kept as counts per bucket, so that percentiles over any range
come from merging a few rollup rows instead of reading every run.

Bucket `i` holds the values v (milliseconds) with GROWTH**i <= v < GROWTH**(i+1); a percentile is
answered with the geometric middle of its bucket, GROWTH**(i + 1/2), whose distance to any value of
the bucket is at most sqrt(GROWTH) - 1 of it: with GROWTH = 1.04, **a relative error of at most 2 %**
(1.98 %). Values below MIN_MS (a sub-microsecond duration, or zero) share the lowest bucket and are
answered as 0. Buckets are keyed by their index as text (JSON objects' keys), and only the buckets
that hold values are kept: a day of one workflow's runs is a few dozen keys.
"""

import math
from collections.abc import Iterable, Mapping

GROWTH = 1.04
RELATIVE_ERROR_BOUND = math.sqrt(GROWTH) - 1  # 0.0198
MIN_MS = 0.001
ZERO = "z"  # the bucket of values below MIN_MS

Histogram = dict[str, int]


def bucket_of(value_ms: float) -> str:
    if value_ms < MIN_MS:
        return ZERO
    return str(math.floor(math.log(value_ms) / math.log(GROWTH)))


def histogram_of(values: Iterable[float]) -> Histogram:
    histogram: Histogram = {}
    for value in values:
        key = bucket_of(value)
        histogram[key] = histogram.get(key, 0) + 1
    return histogram


def merged(*histograms: Mapping[str, int]) -> Histogram:
    total: Histogram = {}
    for histogram in histograms:
        for key, count in histogram.items():
            total[key] = total.get(key, 0) + count
    return total


def percentile(histogram: Mapping[str, int], q: float) -> float | None:
    """The q-th percentile (0 < q <= 100) of the values counted, within RELATIVE_ERROR_BOUND; None for an
    empty histogram. The nearest-rank definition: the value at rank ceil(q/100 * n)."""
    count = sum(histogram.values())
    if not count:
        return None
    rank = max(1, math.ceil(q / 100 * count))
    seen = histogram.get(ZERO, 0)
    if seen >= rank:
        return 0.0
    for index, counted in sorted((int(key), counted) for key, counted in histogram.items() if key != ZERO):
        seen += counted
        if seen >= rank:
            return GROWTH ** (index + 0.5)
    raise AssertionError("unreachable: the ranks add up to the count")
