"""Screening a real search: the records (a search export), the labels file the reviewer edits (id, judgement;
never written by the tool) and the review's state in the output folder. Each run reads the labels, appends the
newly labelled records to the screened stream, says where the review stands (each stopping rule's verdict) and
proposes the next batch. The state is written last and atomically: a run killed at any point loses nothing,
and a rerun with the same labels proposes the same batch."""

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import outputs
from ..data import _rows, check_columns, read_table, stable_ids
from ..errors import ScreeningInputError
from . import stopping
from .loop import batch_rng, next_batch, retrain
from .rankers import TEXT_COLUMNS, build_ranker

BLANK = ("", "nan")
LABEL_SPELLINGS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1}


@dataclass
class ReviewArguments:
    """The search, the reviewer's labels and where the review's state and next batch go."""

    records_file: str = field(
        metadata={
            "help": "The search export: .csv, .tsv, .jsonl, .xlsx or .ris, with title and abstract. Records "
            "without an id get 'r' + 12 hex digits of the SHA-1 of title and abstract (see README)."
        }
    )
    labels_file: str = field(
        metadata={
            "help": "CSV id,judgement that you edit (1 include, 0 exclude, blank not read yet). The tool only reads "
            "it; it may not exist before the first batch."
        }
    )
    output_dir: str = field(
        metadata={"help": "The review's folder: state.json, next_batch.csv, summary.md, recall_curve.png."}
    )
    id_column: str = field(default="id", metadata={"help": "Column of record ids in --records_file."})
    audit: bool = field(
        default=False,
        metadata={
            "help": "Propose a random audit sample of the unread records as the next batch (its size certifies "
            "--target_recall at --confidence if it holds no include)."
        },
    )


def load_records(path, id_column="id", flag="--records_file"):
    """id, title, abstract of every record (ids made by `stable_ids` where missing; duplicates are an error)."""
    frame = read_table(path, flag)
    check_columns(frame, TEXT_COLUMNS, path, flag)
    records = frame[TEXT_COLUMNS].astype(str).copy()
    records.insert(0, "id", stable_ids(frame, id_column, TEXT_COLUMNS))
    duplicated = records.index[records["id"].duplicated(keep=False)]
    if len(duplicated):
        raise ScreeningInputError(
            f"{flag}: {path}: duplicate ids {sorted(set(records['id'][duplicated]))[:5]} in {_rows(duplicated)}"
        )
    return records.reset_index(drop=True)


def read_labels(path, known_ids, flag="--labels_file"):
    """{id: 0/1} in the file's order from the reviewer's labels file (columns id, judgement; blank = not read).
    Labels other than 0/1/blank, ids not in the records, and an id labelled twice with different values are
    one-line errors naming the file and rows. A file that does not exist yet holds no labels."""
    path = Path(path)
    if not path.exists():
        return {}
    frame = read_table(path, flag)
    check_columns(frame, ["id", "judgement"], path, flag)
    ids = frame["id"].astype(str).str.strip()
    raw = frame["judgement"].astype(str).str.strip()
    bad = frame.index[~raw.isin([*LABEL_SPELLINGS, *BLANK])]
    if len(bad):
        values = ", ".join(sorted({repr(v) for v in raw[bad]})[:5])
        raise ScreeningInputError(f"{flag}: {path}: judgement must be 0, 1 or blank; {_rows(bad)} hold {values}")
    unknown = frame.index[~ids.isin(set(known_ids))]
    if len(unknown):
        raise ScreeningInputError(
            f"{flag}: {path}: ids not in the records: {', '.join(ids[unknown][:5])} in {_rows(unknown)}"
        )
    labelled = ~raw.isin(BLANK)
    values = raw[labelled].map(LABEL_SPELLINGS)
    conflicting = values.groupby(ids[labelled]).transform("nunique") > 1
    if conflicting.any():
        rows = values.index[conflicting.to_numpy()]
        raise ScreeningInputError(
            f"{flag}: {path}: id {ids[rows[0]]} is labelled both 0 and 1 in {_rows(rows)}; keep one judgement"
        )
    return dict(zip(ids[labelled], values.astype(int)))


def records_digest(records):
    return hashlib.sha256("\x00".join(records["id"]).encode()).hexdigest()[:16]


def new_state(records, seed):
    return {"records_digest": records_digest(records), "seed": seed, "stream": [], "batches": [], "audits": []}


def extend_stream(state, labels, labels_file):
    """Append the newly labelled ids to the screened stream: those of the last batch in its order, then the others
    in the labels file's order. A screened record whose label was removed is an error (the stream is the record
    of what was read)."""
    stream = state["stream"]
    dropped = [i for i in stream if i not in labels]
    if dropped:
        raise ScreeningInputError(
            f"--labels_file: {labels_file}: ids read before have no label now: {', '.join(dropped[:5])}; "
            "put their judgements back"
        )
    seen = set(stream)
    last = state["batches"][-1]["ids"] if state["batches"] else []
    new = [i for i in last if i in labels and i not in seen]
    new += [i for i in labels if i not in seen and i not in set(new)]
    stream.extend(new)
    return new


def audit_status(state, labels, records_count, stop_args):
    """The last audit's outcome: pending (ids not labelled yet), certified (no include... or the exact bound
    reaches the target) or failed; None without an audit."""
    if not state["audits"]:
        return None
    audit = state["audits"][-1]
    missing = [i for i in audit["ids"] if i not in labels]
    if missing:
        return {"status": "pending", "unlabelled": len(missing), **audit}
    hits = sum(labels[i] for i in audit["ids"])
    certificate = stopping.audit_bound(audit["found"], audit["unread"], len(audit["ids"]), hits, audit["confidence"])
    status = "certified" if certificate["recall_bound"] >= stop_args.target_recall else "failed"
    return {"status": status, "sample_includes": int(hits), **certificate, **audit}


def verdicts(stream_labels, records_count, stop_args, audit, scores=None, stream_rows=None):
    """Where the review stands: includes found, records read, each stopping rule's verdict (stop, recall_estimate,
    interval, assumption, guarantee and its statistics), the frontier and the recommended rule. `scores`: the
    ranker's scores of every record at this step's retrain (None before one), `stream_rows` the rows read."""
    stream_labels = np.asarray(stream_labels, dtype=np.int64)
    target, confidence = stop_args.target_recall, stop_args.confidence
    read, found = int(stream_labels.size), int(stream_labels.sum())
    state = stopping.ReadingState(stream_labels, records_count, audit=audit)
    if scores is not None:
        unread = np.ones(records_count, dtype=bool)
        unread[stream_rows] = False
        state.unread_scores, state.read_scores = scores[unread], scores[np.asarray(stream_rows)]
    rules = {name: rule.entry(state) for name, rule in stopping.build_rules(stop_args, review=True).items()}
    recommended, measured = stopping.evaluate.recommended_rule(target)
    base, stricter = stopping.evaluate.split_name(recommended)
    if base not in rules:
        recommended, measured = "hypergeometric", None
    elif stricter is not None:  # the rule run at a stricter target: its stop reaches this one too
        rules[recommended] = stopping.build_rules(stop_args, stricter, [base])[base].entry(state)
    return {
        "records": records_count,
        "records_read": read,
        "includes_found": found,
        "target_recall": target,
        "confidence": confidence,
        "frontier": stopping.frontier(stream_labels, records_count, target, confidence),
        "floor_read_share": stopping.floor_read_share(found, records_count, target, confidence) if found else None,
        "rules": rules,
        "recommended": recommended,
        "recommended_measured": measured,
    }


def propose(records, state, labels, scores, loop_args, stop_args, audit_requested, audit):
    """The next batch: the pending audit's unlabelled ids; a new audit sample when asked; else the loop's next batch
    (`loop.next_batch`: the top unread records by `scores`, random while there are none). Returns (rows, kind)."""
    ids = records["id"].to_numpy()
    row_of = {i: n for n, i in enumerate(ids)}
    read = np.zeros(len(ids), dtype=bool)
    read[[row_of[i] for i in state["stream"]]] = True
    unread = np.flatnonzero(~read)
    if unread.size == 0:
        return unread, "none"
    if audit is not None and audit["status"] == "pending":
        return np.asarray([row_of[i] for i in audit["ids"] if i not in labels]), "audit"
    if audit_requested:
        level = 1 - (1 - stop_args.confidence) / 2 ** (len(state["audits"]) + 1)
        found = int(sum(labels[i] for i in state["stream"]))
        size = stopping.audit_sample_size(unread.size, found, stop_args.target_recall, level)
        rng = batch_rng(state["seed"], len(state["batches"]))
        rows = rng.permutation(unread)[: min(size, unread.size)]
        state["audits"].append(
            {"ids": ids[rows].tolist(), "unread": int(unread.size), "found": found, "confidence": level}
        )
        return rows, "audit"
    return next_batch(scores, unread, len(state["batches"]), len(state["stream"]), loop_args, state["seed"])


def load_state(path, records):
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ScreeningInputError(
            f"--output_dir: {path} is not readable JSON ({err}); restore it or start anew"
        ) from None
    if state.get("records_digest") != records_digest(records):
        raise ScreeningInputError(
            f"--output_dir: {path} belongs to another records file (its ids differ); use a new --output_dir"
        )
    return state


def batch_frame(records, rows, scores):
    frame = records.iloc[rows][["id", "title", "abstract"]].copy()
    frame["score"] = scores[rows]
    return frame.reset_index(drop=True)


def stream_frame(state, labels, records):
    """The screened stream as a table: step, id, label, round."""
    round_of = {i: b["round"] for b in state["batches"] for i in b["ids"]}
    return pd.DataFrame(
        {
            "step": np.arange(1, len(state["stream"]) + 1),
            "id": state["stream"],
            "label": [labels[i] for i in state["stream"]],
            "round": [round_of.get(i, 0) for i in state["stream"]],
        }
    )


def review_summary(verdict, batch_kind, batch_rows, records_file):
    """The report of where a review stands: counts, each rule's verdict, the frontier and the stop certificate."""
    front = verdict["frontier"]
    lines = [
        f"# Screening {records_file}",
        "",
        f"Read {verdict['records_read']} of {verdict['records']} records; {verdict['includes_found']} includes found.",
        "",
        f"Recall frontier (hypergeometric test): recall >= {front['recall_bound']:.3f} at confidence "
        f"{verdict['confidence']:g}; the target {verdict['target_recall']:g} holds at confidence "
        f"{front['target_confidence']:.3f}. Missed includes: at most {front['expected_missed_high']:.0f} at "
        f"confidence {verdict['confidence']:g} (estimate from the last 10% read: {front['expected_missed']:.1f}).",
        "",
        "## Recommended rule and the certified one",
        "",
        *[f"- {line}" for line in recommendation_lines(verdict)],
        "",
        "## Every rule",
        "",
        "| rule | verdict | guarantee | recall estimate | interval | assumes | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    shown = ("stop", "guarantee", "recall_estimate", "interval", "assumption")
    for rule, v in verdict["rules"].items():
        detail = ", ".join(f"{k}={_short(x)}" for k, x in v.items() if k not in shown)
        interval = "-" if v["interval"] is None else f"[{v['interval'][0]:.3f}, {v['interval'][1]:.3f}]"
        lines.append(
            f"| {rule} | {'STOP' if v['stop'] else 'go on'} | {v['guarantee']} | {_short(v['recall_estimate'])} "
            f"| {interval} | {v['assumption']} | {detail} |"
        )
    certified = [r for r in ("audit", "hypergeometric") if verdict["rules"].get(r, {}).get("stop")]
    lines += ["", "## Stop certificate", ""]
    if certified:
        lines.append(
            f"Certified by the {certified[0]} rule: recall >= {verdict['target_recall']:g} at confidence "
            f"{verdict['confidence']:g}, after reading {verdict['records_read']} of {verdict['records']} records "
            f"({verdict['includes_found']} includes). Hypergeometric frontier: recall >= {front['recall_bound']:.3f} "
            f"at {verdict['confidence']:g}, {includes_missed(front['expected_missed_high'])}."
            + _audit_sentence(verdict["rules"].get("audit"))
        )
    else:
        lines.append("No certified rule says stop yet.")
    if verdict["floor_read_share"] is not None:
        lines += [
            "",
            f"Floor: with {verdict['includes_found']} includes, a random-sample certificate needs at least "
            f"{verdict['floor_read_share']:.3f} of the records read.",
        ]
    lines += [
        "",
        f"Next batch ({batch_kind}): {batch_rows} records in next_batch.csv.",
        "",
        "![recall curve](recall_curve.png)",
        "",
    ]
    return "\n".join(lines)


def _short(value):
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def steady_progress(rule):
    """For a steady rule that says go on while its counting process says stop: how long that stop has held and how
    long it must ('' otherwise)."""
    streak = rule.get("stop_streak")
    if not streak or rule["stop"]:
        return ""
    return (
        f"its counting process has said stop after each of the last {streak} records read, of the "
        f"{rule['streak_needed']} it needs"
    )


def includes_missed(count):
    """ "at most N includes missed", N rounded (and "include" for one)."""
    count = round(count)
    return f"at most {count} include{'' if count == 1 else 's'} missed"


def measured_reliability(measured):
    """'97% of 190 simulated runs (95% CI 93-99%; where they were measured)': a rule's measured reliability, its
    interval and provenance, where known."""
    interval = measured.get("reliability_interval")
    notes = [f"95% CI {interval[0] * 100:.0f}-{interval[1]:.0%}"] if interval else []
    notes += [measured["measured_on"]] if measured.get("measured_on") else []
    return f"{measured['reliability']:.0%} of {measured['runs']} simulated runs" + (
        f" ({'; '.join(notes)})" if notes else ""
    )


def recommendation_lines(verdict):
    """Two lines for the review team: the recommended rule (its verdict, recall estimate and measured reliability)
    and the certified hypergeometric rule (a guarantee: its bound, and how many more excludes let it stop)."""
    target, confidence = verdict["target_recall"], verdict["confidence"]
    name = verdict["recommended"]
    rule = verdict["rules"][name]
    estimate = (
        "no recall estimate yet" + (f" ({rule['status']})" if rule.get("status") else "")
        if rule["recall_estimate"] is None
        else (
            f"recall estimate {rule['recall_estimate']:.3f}"
            + ("" if rule["interval"] is None else f" [{rule['interval'][0]:.3f}, {rule['interval'][1]:.3f}]")
        )
    )
    kind = {"certified": "a guarantee", "estimate": "an estimate, not a guarantee", "none": "no guarantee"}
    measured = verdict.get("recommended_measured")
    reliability = (
        f"it reached the target in {measured_reliability(measured)}, mean overshoot {measured['overshoot']:.3f} of "
        "the records"
        if measured and measured.get("reliability") is not None
        else "its reliability on the benchmark reviews is not measured yet"
    )
    held = steady_progress(rule)
    held = f" ({held})" if held else ""
    first = (
        f"Recommended ({name}, {kind[rule['guarantee']]}): {'STOP' if rule['stop'] else 'go on'}{held}; {estimate}; "
        f"{reliability}. Assumes {rule['assumption']}."
    )
    certified = verdict["rules"]["hypergeometric"]
    more = certified.get("excludes_to_stop")
    if certified["stop"]:
        when = "it says stop now"
    elif more is None:
        when = (
            f"{target:g} at {confidence:.0%} confidence cannot be certified before every record is read with the "
            f"{verdict['includes_found']} includes found so far"
        )
    else:
        when = f"{more} more records read without an include would let it stop"
    second = (
        f"Certified (hypergeometric, a guarantee): recall >= {verdict['frontier']['recall_bound']:.3f} at confidence "
        f"{confidence:g}; {when}. Assumes {certified['assumption']}."
    )
    return [first, second]


def _audit_sentence(audit):
    if not audit or audit.get("status") != "certified":
        return ""
    return (
        f" Audit of {audit['sample']} random unread records with {audit['sample_includes']} includes: "
        f"recall >= {audit['recall_bound']:.3f}, {includes_missed(audit['expected_missed_high'])}."
    )


def run_review(review_args, ranker_args, loop_args, stop_args):
    """One step of a real review: read, update the stream, judge, propose, write (state.json last). Returns the
    verdicts."""
    out = Path(review_args.output_dir)
    if out.resolve() == Path(review_args.labels_file).resolve().parent and Path(review_args.labels_file).name in (
        outputs.NEXT_BATCH,
        outputs.SCREENED,
        outputs.STATE,
        outputs.SUMMARY,
    ):
        raise ScreeningInputError(f"--labels_file {review_args.labels_file} would be overwritten; rename it")
    if ranker_args.feature_cache_dir is None:  # embed the search once, not at every step
        ranker_args = replace(ranker_args, feature_cache_dir=str(out / "embeddings"))
    records = load_records(review_args.records_file, review_args.id_column)
    labels = read_labels(review_args.labels_file, set(records["id"]))
    state = load_state(out / outputs.STATE, records) or new_state(records, loop_args.seed)
    extend_stream(state, labels, review_args.labels_file)
    audit = audit_status(state, labels, len(records), stop_args)
    stream_labels = [labels[i] for i in state["stream"]]
    row_of = {i: n for n, i in enumerate(records["id"])}
    stream_rows = np.asarray([row_of[i] for i in state["stream"]], dtype=np.int64)
    scores = None
    if 0 < sum(stream_labels) < len(stream_labels):  # an include and an exclude: the ranker can be fitted
        scores = retrain(build_ranker(records, ranker_args, state["seed"]), stream_rows, stream_labels)
    verdict = verdicts(stream_labels, len(records), stop_args, audit, scores, stream_rows)
    audit_requested = review_args.audit and (audit is None or audit["status"] == "failed")
    rows, kind = propose(records, state, labels, scores, loop_args, stop_args, audit_requested, audit)
    scores = np.full(len(records), np.nan) if scores is None or kind == "audit" else scores
    if kind != "none" and not (kind == "audit" and audit is not None and audit["status"] == "pending"):
        state["batches"].append(
            {"round": len(state["batches"]) + 1, "kind": kind, "ids": records["id"].to_numpy()[rows].tolist()}
        )
    state["verdicts"] = verdict
    outputs.write_next_batch(out, batch_frame(records, rows, scores))
    outputs.write_screened(out, stream_frame(state, labels, records))
    stops = {rule: verdict["records_read"] for rule, v in verdict["rules"].items() if v["stop"]}
    outputs.plot_recall_curve(out, [stream_labels], len(records), stops, title="includes found so far")
    outputs.write_summary(out, review_summary(verdict, kind, len(rows), review_args.records_file))
    outputs.write_state(out, state)  # last: the run is complete
    return verdict, kind, len(rows)
