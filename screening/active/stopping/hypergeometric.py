"""The hypergeometric stopping test (Callaghan & Mueller-Hansen, "Statistical stopping criteria for automated
screening in systematic reviews", Systematic Reviews 9:273, 2020; buscarpy's `calculate_h0`), its recall frontier
and how many more excludes it needs."""

import math

import numpy as np
from scipy.special import gammaln

from .base import Decision, StoppingRule, register


def _log_comb(n, k):
    with np.errstate(invalid="ignore"):
        out = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    return np.where((k >= 0) & (k <= n), out, -np.inf)


def hypergeom_cdf(k, population, successes, draws):
    """hypergeom.cdf(k, population, successes, draws), elementwise: the exact pmf terms i = 0..k summed, from
    log pmf(0) and the ratio pmf(i+1)/pmf(i) = (K - i)(m - i) / ((i + 1)(N - K - m + i + 1)), in logs (scipy's
    cdf is ~100x slower on these arrays, and the stopping search calls it thousands of times)."""
    k, population, successes, draws = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in
                                                            (k, population, successes, draws)))  # fmt: skip
    if k.size == 0:
        return np.zeros(k.shape)
    lowest = np.maximum(0.0, draws - (population - successes))  # the fewest includes a draw can hold
    first = (
        _log_comb(successes, lowest) + _log_comb(population - successes, draws - lowest) - _log_comb(population, draws)
    )
    i = lowest[..., None] + np.arange(int((k - lowest).max(initial=0)) + 1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log((successes[..., None] - i) * (draws[..., None] - i)) - np.log(
            (i + 1) * (population[..., None] - successes[..., None] - draws[..., None] + i + 1)
        )
    logs = first[..., None] + np.concatenate([np.zeros(k.shape + (1,)), np.cumsum(ratio[..., :-1], axis=-1)], -1)
    terms = np.where((i <= k[..., None]) & np.isfinite(logs), np.exp(logs), 0.0)
    return np.where(k < lowest, 0.0, np.minimum(terms.sum(axis=-1), 1.0))


def _urns(labels, records):
    """For every urn of the last m = 1..n records read: m, the includes k in it, and its population
    (the records not read before it)."""
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.size
    m = np.arange(1, n + 1)
    k = np.cumsum(labels[::-1])
    return m, k, records - (n - m), int(labels.sum())


def hypergeometric_p(labels, records, target_recall=0.95):
    """The p-value of H0 "recall < target" after reading `labels` (in reading order) of `records` records, exactly
    as buscarpy's calculate_h0: for each urn of the last m records read holding k includes,
    K_hat = floor(r / target + 1 - (r - k)) includes in the urn's population N - (n - m), and
    p = min over m of hypergeom.cdf(k, N - (n - m), K_hat, m). An urn whose population cannot hold K_hat includes
    rules H0 out (p = 0). 1.0 before an include is read (no recall can be certified then), unless every record is
    read (nothing is left to miss: 0)."""
    if len(labels) == 0 or not np.any(labels):
        return 0.0 if len(labels) >= records else 1.0
    m, k, population, r = _urns(labels, records)
    k_hat = np.floor(r / target_recall + 1 - (r - k))
    p = np.where(k_hat > population, 0.0, hypergeom_cdf(k, population, np.minimum(k_hat, population), m))
    return float(p.min())


def hypergeometric_p_totals(labels, records, totals):
    """p of H0 "the search holds at least T includes" for each T in `totals` (the same urns as
    `hypergeometric_p`, whose K_hat is the T = floor(r / target + 1) case)."""
    m, k, population, r = _urns(labels, records)
    totals = np.asarray(totals, dtype=np.float64)[:, None]
    k_hat = totals - (r - k)[None, :]
    p = np.where(k_hat > population, 0.0, hypergeom_cdf(k, population, np.minimum(k_hat, population), m))
    return p.min(axis=1)


def _rejects(labels, records, totals, alpha):
    """Whether the test rejects H0 "the search holds at least T includes" at level `alpha` (< 0.5), for each T in
    `totals`, exactly as `hypergeometric_p_totals(...) < alpha` but fast: an urn whose includes k reach its mean
    m K_hat / population + 1 has cdf >= 0.5 (a hypergeometric median is within 1 of its mean) and is skipped."""
    m, k, population, r = _urns(labels, records)
    out = []
    for total in np.atleast_1d(totals):
        k_hat = total - (r - k)
        if np.any(k_hat > population):
            out.append(True)
            continue
        candidates = k < m * k_hat / population + 1
        if not candidates.any():
            out.append(False)
            continue
        c = candidates
        out.append(bool(hypergeom_cdf(k[c], population[c], k_hat[c], m[c]).min() < alpha))
    return np.asarray(out)


def rejects(labels, records, target_recall=0.95, confidence=0.95):
    """`hypergeometric_p(labels, records, target) < 1 - confidence`, computed fast (`_rejects`)."""
    labels = np.asarray(labels, dtype=np.int64)
    r = int(labels.sum())
    if r == 0:
        return labels.size >= records  # no include: certified only once nothing is left unread
    return bool(_rejects(labels, records, [math.floor(r / target_recall + 1)], 1 - confidence)[0])


def frontier(labels, records, target_recall=0.95, confidence=0.95):
    """Where the review stands on the hypergeometric test: `recall_bound` (recall >= it at `confidence`: the
    highest target certified), `target_confidence` (the confidence at which `target_recall` holds), and the
    missed includes: at most `expected_missed_high` at `confidence`, `expected_missed` estimated from the
    last 10% read (conservative while the ranking beats random)."""
    labels = np.asarray(labels, dtype=np.int64)
    n, r = labels.size, int(labels.sum())
    target_confidence = 1 - hypergeometric_p(labels, records, target_recall)
    if n >= records:  # every record read: nothing missed
        return {
            "recall_bound": 1.0,
            "target_confidence": target_confidence,
            "expected_missed": 0.0,
            "expected_missed_low": 0.0,
            "expected_missed_high": 0.0,
        }
    if n == 0 or r == 0:
        return {
            "recall_bound": 0.0,
            "target_confidence": target_confidence,
            "expected_missed": float("nan"),
            "expected_missed_low": 0.0,
            "expected_missed_high": float(records - n),
        }
    # the smallest total T of includes ruled out; p falls as T grows, so search T = r+1 .. r + unread
    low, high = r + 1, r + (records - n) + 1
    while low < high:
        mid = (low + high) // 2
        if _rejects(labels, records, [mid], 1 - confidence)[0]:
            high = mid
        else:
            low = mid + 1
    upper_total = low - 1  # the most includes the search can hold at `confidence`
    window = max(1, math.ceil(0.1 * n))
    return {
        "recall_bound": r / upper_total if upper_total else 1.0,
        "target_confidence": target_confidence,
        "expected_missed": float(labels[-window:].mean() * (records - n)),
        "expected_missed_low": 0.0,
        "expected_missed_high": float(max(upper_total - r, 0)),
    }


def excludes_to_certify(labels, records, target_recall=0.95, confidence=0.95):
    """How many more records read without an include would let the hypergeometric test stop: the fewest k with
    p(labels + k zeros) < 1 - confidence (0 when it stops now), by bisection (p never rises as zeros are appended:
    each urn keeps its includes and population and draws one more record). None when even reading every unread
    record without an include would not (e.g. too few includes found)."""
    labels = np.asarray(labels, dtype=np.int64)
    unread = records - labels.size
    if unread <= 0:
        return 0
    if not labels.any():
        return None

    def stops(k):
        return rejects(np.concatenate([labels, np.zeros(k, np.int64)]), records, target_recall, confidence)

    if stops(0):
        return 0
    if unread == 0 or not stops(unread):
        return None
    low, high = 1, unread
    while low < high:
        mid = (low + high) // 2
        if stops(mid):
            high = mid
        else:
            low = mid + 1
    return low


@register
class HypergeometricRule(StoppingRule):
    """Callaghan & Mueller-Hansen (2020), as buscarpy's `calculate_h0`: stop when the p-value of "recall <
    target" falls under 1 - confidence. The recall estimate uses the includes per record of the last 10% read; the
    interval is [the frontier's certified bound, 1]."""

    name = "hypergeometric"
    guarantee = "certified"
    assumption = (
        "the last records read are no poorer in includes than a random sample of the unread ones "
        "(conservative while the ranking beats random)"
    )

    def decide(self, state):
        labels, records = state.labels, state.records
        p = hypergeometric_p(labels, records, self.target_recall)
        front = frontier(labels, records, self.target_recall, self.confidence)
        found = state.found
        estimate = found / (found + front["expected_missed"]) if found else None
        detail = {
            "p_value": p,
            "recall_bound": front["recall_bound"],
            "target_confidence": front["target_confidence"],
            "missed_at_most": front["expected_missed_high"],
            "excludes_to_stop": excludes_to_certify(labels, records, self.target_recall, self.confidence),
        }
        return Decision(
            stop=p < 1 - self.confidence,
            recall_estimate=estimate,
            interval=(front["recall_bound"], 1.0) if found else None,
            detail=detail,
        )

    def stops(self, state):
        return rejects(state.labels, state.records, self.target_recall, self.confidence)  # False before an include
