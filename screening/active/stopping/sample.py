"""Certified rules that read a random sample: the audit of the unread records (exact hypergeometric bound) and
QBCB / the target method (a random sample drawn before ranked reading). In simulation the sample's records count
as read."""

import math

import numpy as np
from scipy.special import gammaln
from scipy.stats import binom, hypergeom

from .base import Decision, StoppingRule, StopPoint, register


def audit_sample_size(unread, found, target_recall=0.95, confidence=0.95):
    """Records a random sample of the `unread` records must hold, with no include in it, to certify recall >=
    target at `confidence` with `found` includes read: the fewest s with hypergeom.pmf(0, unread, K0, s) <
    1 - confidence, where K0 = floor(found / target) - found + 1 is the fewest hidden includes that would put
    recall under the target. `unread + 1` when no sample can (K0 > unread never happens: then s = 0)."""
    hidden = math.floor(found / target_recall + 1e-9) - found + 1
    if hidden > unread:
        return 0
    s = np.arange(0, unread - hidden + 1)
    # pmf(0) = C(unread - hidden, s) / C(unread, s), in logs (0 for s > unread - hidden, never needed: it is < 1 - c)
    log_pmf = (
        gammaln(unread - hidden + 1) - gammaln(unread - hidden - s + 1) - gammaln(unread + 1) + gammaln(unread - s + 1)
    )
    ok = np.flatnonzero(np.exp(log_pmf) < 1 - confidence)
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


def audit_stop(labels, target_recall=0.95, confidence=0.95, audit_after=200, seed=0):
    """Simulate the audit rule on a complete screening order (`labels`: every record's label, in ranked order).
    Ranked reading goes on until `audit_after` excludes in a row; then a random sample of the unread records, of
    `audit_sample_size` at this audit's confidence, is read in random order; an include in it fails the audit
    (the sample read so far stays read, its includes count as found) and ranked reading goes on. The ranked order
    is kept after a failed audit (a real run would retrain on the includes found). Returns (records read,
    includes found, certificate, position in the ranked order) at the first certified audit, or None."""
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
            return int(read.sum()), int(labels[read].sum()), certificate, position
        read[sample[: hits[0] + 1]] = True
        run = 0
    return None


@register
class AuditRule(StoppingRule):
    """A random sample of the unread records, sized by `audit_sample_size` so that finding no include in it
    certifies the target; the k-th audit tests at (1 - confidence) / 2**k (all audits together keep the
    confidence). The exact hypergeometric upper bound on the includes left unread gives the certificate. A review
    draws it on request (`screen --audit`); a simulation after `audit_after` excludes in a row."""

    name = "audit"
    guarantee = "certified"
    assumption = "nothing about the ranking: the audit sample is drawn at random from the unread records"
    arguments = {"audit_after": "audit_after"}

    def __init__(self, target_recall=0.95, confidence=0.95, audit_after=200):
        super().__init__(target_recall, confidence)
        self.audit_after = audit_after

    def decide(self, state):
        audit = state.audit
        if audit is None or audit.get("status") in (None, "pending"):
            why = "no audit drawn (screen --audit)" if audit is None else "audit sample not read in full yet"
            return Decision(False, detail={"status": why if audit is None else "pending"})
        detail = {**{k: v for k, v in audit.items() if k != "ids"}, "sample": len(audit.get("ids", []))}
        bound = audit["recall_bound"]
        found = audit["found"] + audit["sample_includes"]
        estimate = found / (found + audit["expected_missed"]) if found else None
        return Decision(audit["status"] == "certified", estimate, (bound, 1.0), detail)

    def first_stop(self, reading, seed=0):
        result = audit_stop(reading.labels, self.target_recall, self.confidence, self.audit_after, seed)
        if result is None:
            return None
        read, found, certificate, position = result
        estimate = found / (found + certificate["expected_missed"]) if found else None
        decision = Decision(True, estimate, (certificate["recall_bound"], 1.0), certificate)
        return StopPoint(position, read, found, decision)


def qbcb_cutoff(sample_includes, target_recall, confidence):
    """QBCB's cutoff j: the fewest sample includes the ranked reading must have reached so that recall >= target
    at `confidence`: the smallest j with binom.cdf(j - 1, r, target) >= confidence (None when r is too small)."""
    j = np.arange(1, sample_includes + 1)
    ok = np.flatnonzero(binom.cdf(j - 1, sample_includes, target_recall) >= confidence)
    return int(j[ok[0]]) if ok.size else None


def smallest_sample_includes(target_recall, confidence):
    """The fewest sample includes that can certify: 1 - target**r >= confidence (the target method's r)."""
    return math.ceil(math.log(1 - confidence) / math.log(target_recall) - 1e-12)


@register
class QBCBRule(StoppingRule):
    """QBCB (Lewis, Yang & Frieder, "Certifying One-Phase Technology-Assisted Reviews", CIKM 2021) and the target
    method (Cormack & Grossman, "Engineering Quality and Reliability in Technology-Assisted Review", SIGIR 2016):
    before ranked reading, records are drawn at random until the sample holds r includes; ranked reading stops
    once it has reached j of them, j the smallest with binom.cdf(j - 1, r, target) >= confidence (the recall at
    the j-th of r random includes is the j-th order statistic of r uniforms). With r the fewest that can certify,
    j = r: the target method. The sample's records count as read; the ranking is simulated without the sample's
    labels (a real run would train on them: the figures are conservative)."""

    name = "qbcb"
    guarantee = "certified"
    assumption = "nothing about the ranking: the sample's includes are a random subset of all includes"
    in_review = False

    def __init__(self, target_recall=0.95, confidence=0.95, sample_includes=None):
        super().__init__(target_recall, confidence)
        self.sample_includes = sample_includes or smallest_sample_includes(target_recall, confidence)
        self.cutoff = qbcb_cutoff(self.sample_includes, target_recall, confidence)
        if self.cutoff is None:
            raise ValueError(f"qbcb: {self.sample_includes} sample includes cannot certify {target_recall}")

    def decide(self, state):
        return Decision(False, detail={"status": "needs a random sample drawn before ranked reading"})

    def first_stop(self, reading, seed=0):
        truth = np.zeros(reading.records, dtype=np.int64)
        truth[reading.order] = reading.labels
        drawn = np.random.default_rng(seed + 4_999_999).permutation(reading.records)
        hits = np.cumsum(truth[drawn])
        if hits[-1] < self.sample_includes:  # the sample reads the whole search before it holds r includes
            found = int(truth.sum())
            return StopPoint(reading.records, reading.records, found, Decision(True, 1.0, (1.0, 1.0)))
        sample = drawn[: int(np.searchsorted(hits, self.sample_includes)) + 1]
        in_sample = np.zeros(reading.records, dtype=bool)
        in_sample[sample] = True
        reached = np.cumsum(in_sample[reading.order] & (reading.labels == 1))
        position = int(np.searchsorted(reached, self.cutoff)) + 1
        union = in_sample.copy()
        union[reading.order[:position]] = True
        found = int(truth[union].sum())
        detail = {"sample": int(sample.size), "sample_includes": self.sample_includes, "cutoff": self.cutoff}
        decision = Decision(True, None, (self.target_recall, 1.0), detail)
        return StopPoint(position, int(union.sum()), found, decision)
