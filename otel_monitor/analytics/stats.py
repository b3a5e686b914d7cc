"""Tests on bucketed latency histograms and on error counts: did it get worse from A to B?

* :func:`mann_whitney` -- the Mann-Whitney U (Wilcoxon rank-sum) test computed on two histograms
  with the same buckets. Requests in one bucket are ties (they get the bucket's mid-rank) and the
  variance carries the tie correction, so the test needs no assumption about the shape of the
  latency distribution (latencies are skewed and multimodal: a t-test on means is not valid) and
  no raw samples: the buckets are all a history keeps. Coarse buckets only cost power: two
  versions whose requests fall in the same buckets are indistinguishable, never "different".
  The p-value is one-sided (B slower than A), from the normal approximation (used only from
  :data:`MIN_REQUESTS` requests on each side, where it is accurate). The effect size is the
  probability of superiority ``P(B > A) + P(B = A) / 2`` (Vargha and Delaney's A: 0.5 no
  effect, 0.56 small, 0.64 medium, 0.71 large).
* :func:`error_rate_test` -- is B's error rate higher than A's? A one-sided two-proportion z-test
  (pooled) when every expected cell count is at least 5, else Fisher's exact test (one-sided
  hypergeometric tail), where the normal approximation is not valid.

Pure functions of integer counts; no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["MIN_REQUESTS", "RankTest", "ProportionTest", "mann_whitney", "error_rate_test", "fisher_greater"]

#: fewer requests on either side: not tested (the answer says so)
MIN_REQUESTS = 30


class RankTest(NamedTuple):
    u: float
    #: one-sided p-value of "B is slower than A"
    p_value: float
    #: P(B > A) + P(B = A) / 2 (0.5: no difference)
    effect: float
    n_a: int
    n_b: int


class ProportionTest(NamedTuple):
    #: "z" (two-proportion z-test) or "fisher" (Fisher's exact test)
    test: str
    #: the z statistic (None for Fisher's test)
    statistic: float | None
    #: one-sided p-value of "B fails more often than A"
    p_value: float
    n_a: int
    n_b: int


def _normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney(a: Sequence[int], b: Sequence[int]) -> RankTest | None:
    """One-sided Mann-Whitney U test of B > A on two histograms over the same buckets.

    None when either side is empty or the buckets differ in number.
    """
    if len(a) != len(b):
        return None
    n_a, n_b = sum(a), sum(b)
    if n_a <= 0 or n_b <= 0:
        return None
    n = n_a + n_b
    rank_sum_b = 0.0
    ties = 0.0
    below = 0  # requests (both sides) in lower buckets
    for count_a, count_b in zip(a, b, strict=True):
        t = count_a + count_b
        if t == 0:
            continue
        mid_rank = below + (t + 1) / 2.0
        rank_sum_b += count_b * mid_rank
        ties += t**3 - t
        below += t
    u_b = rank_sum_b - n_b * (n_b + 1) / 2.0  # pairs (a, b) with b > a, ties counted half
    mean = n_a * n_b / 2.0
    variance = n_a * n_b / 12.0 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    effect = u_b / (n_a * n_b)
    if variance <= 0:  # every request in one bucket: no evidence of a difference
        return RankTest(u_b, 1.0 if u_b <= mean else 0.0, effect, n_a, n_b)
    # continuity correction: U moves in steps of 1/2
    z = (u_b - mean - 0.5) / math.sqrt(variance)
    return RankTest(u_b, _normal_sf(z), effect, n_a, n_b)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(errors_a: int, n_a: int, errors_b: int, n_b: int) -> float:
    """One-sided Fisher's exact test: P(B has at least ``errors_b`` of the failures | the margins)."""
    failures = errors_a + errors_b
    n = n_a + n_b
    if failures == 0:
        return 1.0
    denominator = _log_comb(n, failures)
    p = 0.0
    for k in range(errors_b, min(failures, n_b) + 1):
        if failures - k > n_a:
            continue
        p += math.exp(_log_comb(n_b, k) + _log_comb(n_a, failures - k) - denominator)
    return min(1.0, p)


def error_rate_test(errors_a: int, n_a: int, errors_b: int, n_b: int) -> ProportionTest | None:
    """One-sided test that B's error rate is higher than A's; None when a side has no requests."""
    if n_a <= 0 or n_b <= 0:
        return None
    n = n_a + n_b
    failures = errors_a + errors_b
    pooled = failures / n
    expected = (n_a * pooled, n_a * (1 - pooled), n_b * pooled, n_b * (1 - pooled))
    if min(expected) >= 5:
        se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
        z = (errors_b / n_b - errors_a / n_a) / se
        return ProportionTest("z", z, _normal_sf(z), n_a, n_b)
    return ProportionTest("fisher", None, fisher_greater(errors_a, n_a, errors_b, n_b), n_a, n_b)
