"""The browser app's review folder, without the user interface: the same folder `run_screening.py screen` works on
(state.json, next_batch.csv, summary.md, recall_curve.png) plus the records under review (search.csv), the dropped
duplicates, each reviewer's decisions, the resolutions and the labels file they resolve to (labels.csv). Every
decision is written (atomically) before the next record is shown; labels.csv is derived from the decisions and
written after them, so a server killed at any moment loses nothing. Batches come from `run_review`, called with
labels.csv exactly as the command would be, so the same decisions give the same batches."""

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import outputs
from ..active import decisions as dec
from ..active.review import ReviewArguments, load_records, read_labels, run_review
from ..data import read_table
from ..errors import ScreeningInputError

CARD_COLUMNS = ("title", "abstract", "authors", "year", "journal", "doi")


@dataclass
class Upload:
    """A search export read and checked, not yet written: every column, the ids, and the duplicates found."""

    path: str
    table: pd.DataFrame
    duplicates: pd.DataFrame


def inspect_upload(path, id_column="id", threshold=0.9):
    """Read and check a search export (read_table, then the title/abstract columns and the ids); find its
    duplicates. Writes nothing; bad input raises ScreeningInputError."""
    records = load_records(path, id_column, "upload")
    table = read_table(path, "upload").copy()
    table = table.drop(columns=[c for c in ("id", id_column) if c in table.columns])
    table.insert(0, "id", records["id"].to_numpy())
    return Upload(str(path), table, dec.find_duplicates(records, threshold))


class ReviewFolder:
    """One review folder shared by every browser session of the server (one lock: one writer at a time)."""

    def __init__(self, output_dir, ranker_args, loop_args, stop_args, dual=False):
        self.out = Path(output_dir)
        self.ranker_args, self.loop_args, self.stop_args = ranker_args, loop_args, stop_args
        self.reviewers_needed = 2 if dual else 1
        self.lock = threading.RLock()

    # what is on disk

    @property
    def started(self):
        return (self.out / outputs.SEARCH).is_file()

    def table(self):
        """Every column of the records under review, as text."""
        return read_table(self.out / outputs.SEARCH, "search.csv")

    def records(self):
        return load_records(self.out / outputs.SEARCH)

    def state(self):
        path = self.out / outputs.STATE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def verdict(self):
        state = self.state()
        return state.get("verdicts") if state else None

    def decisions(self):
        """{reviewer: {id: decision}}."""
        return {name: p.get("decisions", {}) for name, p in outputs.read_reviewers(self.out).items()}

    def reviewer(self, name):
        return outputs.read_reviewers(self.out).get(name, {"decisions": {}, "include_terms": "", "exclude_terms": ""})

    def resolved(self):
        """({id: 0/1}, conflicts) from every reviewer's decisions and the resolutions."""
        return dec.resolve(self.decisions(), outputs.read_resolutions(self.out), self.reviewers_needed)

    def screened_ids(self):
        state = self.state()
        return state["stream"] if state else []

    def batch(self):
        """The ids of the batch run_review proposed last ([] before the first or when every record is read)."""
        state = self.state()
        return list(state["batches"][-1]["ids"]) if state and state["batches"] else []

    # writing

    def start(self, upload, drop_ids, priors, by):
        """Write the records under review (the upload less `drop_ids`), the dropped duplicates and the priors
        ({id: 0/1}, settled by `by`), then propose the first batch."""
        with self.lock:
            if self.started:
                raise ScreeningInputError(f"{self.out} already holds a review; start another in a new folder")
            drop = set(drop_ids)
            dups = upload.duplicates[upload.duplicates["id"].isin(drop)]
            outputs.write_search(self.out, upload.table[~upload.table["id"].isin(drop)])
            if len(dups):
                outputs.write_duplicates(self.out, dups.merge(upload.table, on="id", how="left"))
            now = time.time()
            resolutions = {i: {"label": int(v), "by": by, "source": "prior", "time": now + n * 1e-6}
                           for n, (i, v) in enumerate(priors.items()) if i not in drop}  # fmt: skip
            outputs.write_resolutions(self.out, resolutions)
            self.sync_labels()
            self.advance()

    def adopt(self, records_file, id_column="id"):
        """A folder `screen` made (state.json, no search.csv): the records file as the records under review (all of
        them: dropping any would change the review), and labels.csv's labels as resolutions."""
        with self.lock:
            upload = inspect_upload(records_file, id_column)
            outputs.write_search(self.out, upload.table)
            self.import_labels()

    def import_labels(self):
        """Labels in labels.csv that the decisions do not give (edited by hand, or written for `screen`) become
        resolutions, so the app goes on from them."""
        with self.lock:
            if not self.started or not (self.out / outputs.LABELS).is_file():
                return
            records = self.records()
            given = read_labels(self.out / outputs.LABELS, set(records["id"]), "labels.csv")
            labels, _ = self.resolved()
            extra = {i: v for i, v in given.items() if labels.get(i) != v}
            if extra:
                resolutions = outputs.read_resolutions(self.out)
                for n, (i, v) in enumerate(extra.items()):
                    resolutions[i] = {"label": int(v), "by": "labels.csv", "source": "labels file", "time": n * 1e-6}
                outputs.write_resolutions(self.out, resolutions)
            self.sync_labels()

    def sync_labels(self):
        """Write labels.csv from the decisions (ids already in it keep their place; new ones follow in the order
        they were settled). Returns the labels."""
        path = self.out / outputs.LABELS
        previous = pd.read_csv(path, dtype=str, keep_default_na=False)["id"].tolist() if path.is_file() else []
        labels, _ = self.resolved()
        times = dec.decision_times(self.decisions(), outputs.read_resolutions(self.out))
        frame = dec.labels_in_order(labels, previous, times)
        old = pd.read_csv(path, dtype=str, keep_default_na=False) if path.is_file() else None
        if (old is None and len(frame)) or (
            old is not None and old.values.tolist() != frame.astype(str).values.tolist()
        ):
            outputs.write_labels(self.out, frame)
        return labels

    def decide(self, name, record_id, judgement, note=""):
        """Store one reviewer's decision (its file first, then labels.csv)."""
        if judgement not in dec.JUDGEMENTS:
            raise ScreeningInputError(f"judgement must be one of {', '.join(dec.JUDGEMENTS)}; got {judgement}")
        with self.lock:
            payload = self.reviewer(name)
            decisions = payload.setdefault("decisions", {})
            decisions.pop(record_id, None)  # a changed decision moves to the end
            decisions[record_id] = {"judgement": judgement, "note": note or "", "time": time.time()}
            outputs.write_reviewer(self.out, name, payload)
            self.sync_labels()

    def undo(self, name):
        """Take back the reviewer's last decision the ranker has not seen; returns its id or None."""
        with self.lock:
            payload = self.reviewer(name)
            record_id = dec.undoable(payload.get("decisions", {}), self.screened_ids())
            if record_id is None:
                return None
            del payload["decisions"][record_id]
            # labels.csv first: killed in between, the decision is still there and labels.csv is rebuilt from it
            labels, _ = dec.resolve(
                {**self.decisions(), name: payload["decisions"]},
                outputs.read_resolutions(self.out),
                self.reviewers_needed,
            )
            path = self.out / outputs.LABELS
            if path.is_file():
                old = pd.read_csv(path, dtype=str, keep_default_na=False)
                outputs.write_labels(self.out, old[old["id"].isin(set(labels))])
            outputs.write_reviewer(self.out, name, payload)
            self.sync_labels()
            return record_id

    def settle(self, record_id, label, by, source="resolved"):
        """A resolution: a conflict settled, or a prior include/exclude."""
        with self.lock:
            resolutions = outputs.read_resolutions(self.out)
            resolutions[record_id] = {"label": int(label), "by": by, "source": source, "time": time.time()}
            outputs.write_resolutions(self.out, resolutions)
            self.sync_labels()

    def set_terms(self, name, include_terms, exclude_terms):
        with self.lock:
            payload = self.reviewer(name)
            if (payload.get("include_terms"), payload.get("exclude_terms")) != (include_terms, exclude_terms):
                payload.update(include_terms=include_terms, exclude_terms=exclude_terms)
                outputs.write_reviewer(self.out, name, payload)

    # the review's progress

    def advance(self):
        """run_review with labels.csv, as `screen --labels_file <folder>/labels.csv --output_dir <folder>`."""
        with self.lock:
            self.sync_labels()
            review_args = ReviewArguments(
                str(self.out / outputs.SEARCH), str(self.out / outputs.LABELS), str(self.out), id_column="id"
            )
            return run_review(review_args, self.ranker_args, self.loop_args, self.stop_args)

    def covered(self, record_id, labels, conflicts, decisions):
        """A batch record needs nobody's decision now: labelled, in conflict, or decided (a maybe included) by
        enough reviewers."""
        if record_id in labels or record_id in conflicts:
            return True
        return sum(record_id in d for d in decisions.values()) >= self.reviewers_needed

    def next_record(self, name):
        """(id or None, message): the reviewer's next record of the current batch. When the batch is settled (every
        record labelled or set aside as maybe, no open conflict, at least one labelled) the next batch is proposed
        first."""
        with self.lock:
            if not self.started:
                return None, "No review yet: upload a search export on the Start tab."
            if self.state() is None:
                self.advance()
            for _ in range(2):
                labels, conflicts = self.resolved()
                decisions = self.decisions()
                mine = decisions.get(name, {})
                batch = self.batch()
                pending = [i for i in batch if i not in labels and i not in mine and i not in conflicts]
                if pending:
                    return pending[0], ""
                # every record labelled or set aside as maybe; an open conflict holds the batch
                settled = all(i in labels or (i not in conflicts and self.covered(i, labels, conflicts, decisions))
                              for i in batch)  # fmt: skip
                if not batch or not settled or not any(i in labels for i in batch):
                    break
                self.advance()
            if not batch:
                return None, "Every record has been read."
            waiting = [i for i in batch if i not in labels and not self.covered(i, labels, conflicts, decisions)]
            open_conflicts = [i for i in batch if i in conflicts]
            maybes = [i for i in batch if i not in labels and i not in conflicts and i not in waiting]
            parts = []
            if waiting:
                parts.append(f"{len(waiting)} records of this batch wait for another reviewer")
            if open_conflicts:
                parts.append(f"{len(open_conflicts)} conflicts to resolve (Conflicts tab)")
            if maybes and not waiting and not open_conflicts:
                parts.append(f"this batch holds only records set aside as maybe ({len(maybes)}): decide them to go on")
            return None, "Batch done. " + "; ".join(parts) + "."

    def export(self):
        """The search with its decision columns (CSV and RIS, the dropped duplicates too) and the files to
        download: labels.csv, the two exports, summary.md, recall_curve.png."""
        with self.lock:
            table = self.table()
            labels, conflicts = self.resolved()
            decisions = self.decisions()
            decision = []
            for i in table["id"]:
                if i in labels:
                    decision.append(dec.INCLUDE if labels[i] else dec.EXCLUDE)
                elif i in conflicts:
                    decision.append("conflict")
                elif any(d.get(i, {}).get("judgement") == dec.MAYBE for d in decisions.values()):
                    decision.append(dec.MAYBE)
                else:
                    decision.append("unread")
            table["decision"] = decision
            table["label"] = [str(labels[i]) if i in labels else "" for i in table["id"]]
            for name, d in decisions.items():
                table[f"decision_{name}"] = [d.get(i, {}).get("judgement", "") for i in table["id"]]
                table[f"note_{name}"] = [d.get(i, {}).get("note", "") for i in table["id"]]
            dup_path = self.out / outputs.DUPLICATES
            if dup_path.is_file():
                dups = pd.read_csv(dup_path, dtype=str, keep_default_na=False)
                dups = dups.drop(columns=["kind", "similarity"]).assign(decision="duplicate")
                table = pd.concat([table, dups], ignore_index=True).fillna("")
            paths = list(outputs.write_search_export(self.out, table))
            extra = [self.out / n for n in (outputs.LABELS, outputs.SUMMARY, outputs.RECALL_CURVE)]
            return [str(p) for p in [extra[0], *paths, *extra[1:]] if Path(p).is_file()]
