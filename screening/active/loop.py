"""The screening loop's two choices: how many records are read between two retrains, and which ones.

Batch size: a fixed number; a share of the records read so far, e.g. `1%` (the default: retrain after every
ceil(1% x records read) records, so after every record for the first 100, then 2 at a time past 100, 10 past 900:
about 100 + 100 ln(N / 100) retrains, 490 on 4,751 records); or `grow` (AutoTAR/BMI, Cormack & Grossman 2015): the
first batch has 1 record and each next one ceil(B / 10) more (1, 2, 3, ..., 10, 11, 13, 15, ...), so a search of N
records takes O(log N) retrains once B passes 10. A linear model on a few thousand records refits in milliseconds,
so retraining often is cheap, and each label moves the ranking soonest (benchmarks/screening.md: `1%` against
`grow`, chosen by benchmarks/screening_protocol.md).
Query: the highest scores first; with `random_share` a share of each batch is drawn at random from the rest.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ScreeningInputError


@dataclass
class LoopArguments:
    """How many records are read between retrains and how they are chosen."""

    batch_size: str = field(
        default="1%",
        metadata={
            "help": "Records read between two retrains (for finetune: the retrain interval): a number; a share of "
            "the records read so far, 'P%%' (ceil(P/100 x records read), at least 1; default 1%%: every record "
            "for the first 100); or 'grow' (1, then ceil(B/10) more each round: O(log N) retrains)."
        },
    )
    random_share: float = field(
        default=0.0, metadata={"help": "Share of each batch drawn at random from the unread records, in [0, 1)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the priors, the random share and the audit samples."})

    def check(self):
        if not _valid_spec(self.batch_size):
            raise ScreeningInputError(
                f"--batch_size must be a positive number, a share such as '1%' (in (0, 100]) or 'grow'; "
                f"got {self.batch_size!r}"
            )
        if not 0 <= self.random_share < 1:
            raise ScreeningInputError(f"--random_share must be in [0, 1); got {self.random_share}")
        return self


def _valid_spec(spec):
    if spec == "grow" or (spec.isdigit() and int(spec) >= 1):
        return True
    try:
        return spec.endswith("%") and 0 < float(spec[:-1]) <= 100
    except ValueError:
        return False


def batch_size(spec, round_index, records_read=0):
    """The size of batch number `round_index` (0-based) under `spec` ('grow', 'P%' of the `records_read` before
    it, or a number)."""
    if spec.endswith("%"):
        return max(1, math.ceil(float(spec[:-1]) * records_read / 100))
    if spec != "grow":
        return int(spec)
    size = 1
    for _ in range(round_index):
        size += math.ceil(size / 10)
    return size


def choose_batch(scores, unread, size, random_share=0.0, rng=None):
    """`size` of the `unread` rows: the highest-scoring ones (ties by row, so the order is reproducible), with
    round(random_share x size) of them drawn at random from the rest. Returned in reading order (by score)."""
    unread = np.asarray(unread)
    size = min(size, unread.size)
    ranked = unread[np.lexsort((unread, -scores[unread]))]
    random_part = int(round(random_share * size)) if rng is not None else 0
    top = ranked[: size - random_part]
    rest = ranked[size - random_part :]
    drawn = rng.choice(rest, size=random_part, replace=False) if random_part else rest[:0]
    batch = np.concatenate([top, drawn])
    return batch[np.lexsort((batch, -scores[batch]))]


def batch_rng(seed, round_index):
    """The random generator of batch `round_index` (the random share, a random first batch): the same for the same
    seed and round in `screen` and `simulate`."""
    return np.random.default_rng([seed, round_index, 7919])


def retrain(ranker, rows, labels):
    """The ranker's scores of every record after fitting on the labelled `rows`; None until both an include and an
    exclude are labelled."""
    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() == labels.max():
        return None
    return ranker.fit_score(np.asarray(rows), labels)


def next_batch(scores, unread, round_index, records_read, loop_args, seed):
    """Batch number `round_index`, after `records_read` records: the top `batch_size` unread records by `scores`
    (with the random share), or a random batch while there are no scores. Returns (rows, kind) with kind 'ranked'
    or 'random'."""
    size = batch_size(loop_args.batch_size, round_index, records_read)
    rng = batch_rng(seed, round_index)
    if scores is None:
        return rng.permutation(unread)[:size], "random"
    return choose_batch(scores, unread, size, loop_args.random_share, rng), "ranked"


@dataclass
class LoopRecord:
    """A simulated loop: rows in reading order, the score each had when chosen (nan for priors), the round that
    chose it (0 for priors), and each retrain as (records read then, scores of every record)."""

    order: np.ndarray
    scores: np.ndarray
    rounds: np.ndarray
    retrains: list


def simulate_loop(ranker, labels, priors, loop_args, seed, budget=None, until=None):
    """The screening loop on known `labels`: the priors, then retrain -> next_batch -> read, until every include
    is found, the records run out or `budget` records are read (the same steps `screen` takes once per call).
    `until(rows read)`: asked after each batch, it ends the loop in place of "every include found" (a stopping
    rule, which cannot know the includes left)."""
    order, chosen, rounds, retrains = list(priors), [np.nan] * len(priors), [0] * len(priors), []
    read = np.zeros(labels.size, dtype=bool)
    read[priors] = True
    total, found = int(labels.sum()), int(labels[priors].sum())
    limit = min(budget or labels.size, labels.size)
    round_index = 0
    while (until is not None or found < total) and len(order) < limit:
        rows = np.asarray(order)
        scores = retrain(ranker, rows, labels[rows])
        retrains.append((len(order), scores))
        batch, _ = next_batch(scores, np.flatnonzero(~read), round_index, len(order), loop_args, seed)
        batch = batch[: limit - len(order)]
        round_index += 1
        read[batch] = True
        order += batch.tolist()
        chosen += (scores[batch] if scores is not None else np.full(batch.size, np.nan)).tolist()
        rounds += [round_index] * batch.size
        found += int(labels[batch].sum())
        if until is not None and until(order):
            break
    return LoopRecord(np.asarray(order), np.asarray(chosen), np.asarray(rounds), retrains)
