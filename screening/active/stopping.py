"""When prioritised screening can stop, and what recall it can then claim.

Every rule reads the screened stream: the 0/1 labels in the order the records were read, out of `records`
records in the search. Each rule's assumption:

- `hypergeometric` (Callaghan & Mueller-Hansen 2020; buscarpy `calculate_h0`): the last m records read are
  treated as a random sample of the records not read before them. While the ranking beats random, the last
  records read are at least as rich in includes as the unread ones, so the test is conservative.
- `audit`: a simple random sample of the unread records, drawn by the tool when the ranked reading has gone
  `audit_after` excludes in a row, read in full unless an include turns up (then the audit failed and ranked
  reading goes on). The exact hypergeometric upper bound on the includes left unread certifies the recall. It
  assumes nothing about the ranking; the k-th audit tests at (1 - confidence) / 2**k, so that all audits
  together keep the stated confidence.
- `consecutive_excludes`, `read_share`: the heuristics people use; no guarantee.

The recall frontier at any point: the highest recall target the hypergeometric test certifies at the chosen
confidence, and the confidence at which the chosen target holds.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import hypergeom

from ..errors import ScreeningInputError

RULES = ("hypergeometric", "audit", "consecutive_excludes", "read_share")


@dataclass
class StoppingArguments:
    """The recall a review wants, the confidence it must hold at, and the heuristics' settings."""

    target_recall: float = field(default=0.95, metadata={"help": "Recall the stopping rules must reach, in (0, 1)."})
    confidence: float = field(default=0.95, metadata={"help": "Confidence of the certified rules, in (0, 1)."})
    consecutive_excludes: int = field(
        default=50, metadata={"help": "Heuristic: stop after this many excludes in a row (no guarantee)."}
    )
    read_share: float = field(
        default=0.5, metadata={"help": "Heuristic: stop after reading this share of the records (no guarantee)."}
    )
    audit_after: int = field(
        default=200,
        metadata={
            "help": "The audit rule draws its random sample of the unread records once ranked reading has gone "
            "this many excludes in a row (and again after each failed audit)."
        },
    )

    def check(self):
        for name in ("target_recall", "confidence"):
            if not 0 < getattr(self, name) < 1:
                raise ScreeningInputError(f"--{name} must be in (0, 1); got {getattr(self, name)}")
        if not 0 < self.read_share <= 1:
            raise ScreeningInputError(f"--read_share must be in (0, 1]; got {self.read_share}")
        for name in ("consecutive_excludes", "audit_after"):
            if getattr(self, name) < 1:
                raise ScreeningInputError(f"--{name} must be at least 1; got {getattr(self, name)}")
        return self


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
    rules H0 out (p = 0). 1.0 before an include is read (no recall can be certified then)."""
    if len(labels) == 0 or not np.any(labels):
        return 1.0
    m, k, population, r = _urns(labels, records)
    k_hat = np.floor(r / target_recall + 1 - (r - k))
    p = np.where(k_hat > population, 0.0, hypergeom.cdf(k, population, np.minimum(k_hat, population), m))
    return float(p.min())


def hypergeometric_p_totals(labels, records, totals):
    """p of H0 "the search holds at least T includes" for each T in `totals` (the same urns as
    `hypergeometric_p`, whose K_hat is the T = floor(r / target + 1) case)."""
    m, k, population, r = _urns(labels, records)
    totals = np.asarray(totals, dtype=np.float64)[:, None]
    k_hat = totals - (r - k)[None, :]
    p = np.where(k_hat > population, 0.0, hypergeom.cdf(k, population, np.minimum(k_hat, population), m))
    return p.min(axis=1)


def _expected_missed(found, upper_total, estimate):
    return {
        "expected_missed": float(estimate),
        "expected_missed_low": 0.0,
        "expected_missed_high": float(max(upper_total - found, 0)),
    }


def frontier(labels, records, target_recall=0.95, confidence=0.95):
    """Where the review stands on the hypergeometric test: `recall_bound` (recall >= it at `confidence`: the
    highest target certified), `target_confidence` (the confidence at which `target_recall` holds), and the
    missed includes: at most `expected_missed_high` at `confidence`, `expected_missed` estimated from the
    last 10% read (conservative while the ranking beats random)."""
    labels = np.asarray(labels, dtype=np.int64)
    n, r = labels.size, int(labels.sum())
    target_confidence = 1 - hypergeometric_p(labels, records, target_recall)
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
        if hypergeometric_p_totals(labels, records, [mid])[0] < 1 - confidence:
            high = mid
        else:
            low = mid + 1
    upper_total = low - 1  # the most includes the search can hold at `confidence`
    window = max(1, math.ceil(0.1 * n))
    estimate = labels[-window:].mean() * (records - n)
    return {
        "recall_bound": r / upper_total if upper_total else 1.0,
        "target_confidence": target_confidence,
        **_expected_missed(r, upper_total, estimate),
    }


def audit_sample_size(unread, found, target_recall=0.95, confidence=0.95):
    """Records a random sample of the `unread` records must hold, with no include in it, to certify recall >=
    target at `confidence` with `found` includes read: the fewest s with hypergeom.pmf(0, unread, K0, s) <
    1 - confidence, where K0 = floor(found / target) - found + 1 is the fewest hidden includes that would put
    recall under the target. `unread + 1` when no sample can (K0 > unread never happens: then s = 0)."""
    hidden = math.floor(found / target_recall + 1e-9) - found + 1
    if hidden > unread:
        return 0
    s = np.arange(0, unread + 1)
    ok = np.flatnonzero(hypergeom.pmf(0, unread, hidden, s) < 1 - confidence)
    return int(ok[0]) if ok.size else unread + 1


def audit_bound(found, unread, sample, sample_includes, confidence=0.95):
    """The exact certificate of an audit: `sample` records drawn at random from `unread` held `sample_includes`
    includes, `found` includes were read before. The upper bound on the includes left unread is the largest K
    with hypergeom.cdf(sample_includes, unread, K, sample) >= 1 - confidence; recall >= (found + j) / (found +
    K) at `confidence`. Returns that bound with the missed includes (point estimate j/s x unread, at most K - j)."""
    ks = np.arange(sample_includes, unread + 1)
    keep = hypergeom.cdf(sample_includes, unread, ks, sample) >= 1 - confidence
    upper_unread = int(ks[keep].max()) if keep.any() else sample_includes
    total_found = found + sample_includes
    estimate = sample_includes / sample * (unread - sample) if sample else float("nan")
    return {
        "recall_bound": total_found / (found + upper_unread) if found + upper_unread else 1.0,
        "expected_missed": float(estimate),
        "expected_missed_low": 0.0,
        "expected_missed_high": float(upper_unread - sample_includes),
    }


def floor_read_share(includes, records, target_recall=0.95, confidence=0.95):
    """The least share of the records any random-sample certificate must read at target/confidence: a ranking
    that put all R includes first, then the audit sample of the N - R others (it must rule out
    floor(R/target) - R + 1 hidden includes)."""
    sample = audit_sample_size(records - includes, includes, target_recall, confidence)
    return (includes + sample) / records


def consecutive_excludes_stop(labels, run_length):
    """The first point (records read) after `run_length` excludes in a row, or None."""
    labels = np.asarray(labels, dtype=np.int64)
    run = 0
    for i, label in enumerate(labels):
        run = 0 if label else run + 1
        if run >= run_length:
            return i + 1
    return None


def hypergeometric_stop(labels, records, target_recall=0.95, confidence=0.95, stride=25):
    """The first point (records read) where the hypergeometric test rejects "recall < target", or None. The test
    is run every `stride` records (and at the end); after the first rejection the points since the previous check
    are tested one by one, so the point returned is exact unless p dipped under 1 - confidence and rose again
    between two checks (then a later, more cautious point is returned)."""
    n = len(labels)
    previous = 0
    for point in sorted(set(range(stride, n + 1, stride)) | {n}):
        if hypergeometric_p(labels[:point], records, target_recall) < 1 - confidence:
            for earlier in range(previous + 1, point):
                if hypergeometric_p(labels[:earlier], records, target_recall) < 1 - confidence:
                    return earlier
            return point
        previous = point
    return None


def audit_stop(labels, target_recall=0.95, confidence=0.95, audit_after=200, seed=0):
    """Simulate the audit rule on a complete screening order (`labels`: every record's label, in ranked order).
    Ranked reading goes on until `audit_after` excludes in a row; then a random sample of the unread records, of
    `audit_sample_size` at this audit's confidence, is read in random order; an include in it fails the audit
    (the sample read so far stays read, its includes count as found) and ranked reading goes on. The ranked order
    is kept after a failed audit (a real run would retrain on the includes found). Returns (records read,
    includes found, certificate) at the first certified audit, or None when no audit certifies."""
    labels = np.asarray(labels, dtype=np.int64)
    records = labels.size
    rng = np.random.default_rng(seed)
    read = np.zeros(records, dtype=bool)
    position, run, audits = 0, 0, 0
    while position < records:
        if not read[position]:
            read[position] = True
            run = 0 if labels[position] else run + 1
        position += 1
        if run < audit_after:
            continue
        audits += 1
        level = 1 - (1 - confidence) / 2**audits
        unread = np.flatnonzero(~read)
        found = int(labels[read].sum())
        size = audit_sample_size(unread.size, found, target_recall, level)
        if size > unread.size:
            run = 0
            continue
        sample = rng.permutation(unread)[:size]
        hits = np.flatnonzero(labels[sample])
        if hits.size == 0:
            read[sample] = True
            certificate = audit_bound(found, unread.size, size, 0, level)
            return int(read.sum()), int(labels[read].sum()), certificate
        read[sample[: hits[0] + 1]] = True
        run = 0
    return None
