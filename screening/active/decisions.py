"""Reviewers' decisions on a real review, without any user interface: each reviewer's include / exclude / maybe
(with a note), the labels they resolve to (what trains the ranker and goes to the labels file), the conflicts of
two reviewers, their agreement (Cohen's kappa), a keyword search of the records, and exact and near-exact
duplicate records.

A decision is `{"judgement": "include" | "exclude" | "maybe", "note": str, "time": float}`; a reviewer's decisions
are a dict id -> decision (their order is their times: the files keep keys sorted). A resolution (a conflict
settled, or prior knowledge) is `{"label": 0 | 1, "by": name, "time": float}`.
"""

import re

import numpy as np
import pandas as pd

INCLUDE, EXCLUDE, MAYBE = "include", "exclude", "maybe"
JUDGEMENTS = (INCLUDE, EXCLUDE, MAYBE)
LABEL_OF = {INCLUDE: 1, EXCLUDE: 0}


def decided_labels(decisions):
    """{id: 0/1} of one reviewer's include/exclude decisions (maybes are not labels)."""
    return {i: LABEL_OF[d["judgement"]] for i, d in decisions.items() if d["judgement"] in LABEL_OF}


def resolve(decisions_by_reviewer, resolutions, reviewers_needed=1):
    """The resolved labels and the conflicts.

    A record's label is its resolution where there is one; else the label every reviewer who included or excluded
    it gave, once at least `reviewers_needed` of them did (2 in dual screening). Records two reviewers labelled
    differently, without a resolution, are conflicts. Returns ({id: 0/1}, {id: {reviewer: 0/1}})."""
    votes = {}
    for reviewer, decisions in decisions_by_reviewer.items():
        for i, label in decided_labels(decisions).items():
            votes.setdefault(i, {})[reviewer] = label
    labels = {i: int(r["label"]) for i, r in resolutions.items()}
    conflicts = {}
    for i, by in votes.items():
        if i in labels:
            continue
        if len(set(by.values())) > 1:
            conflicts[i] = by
        elif len(by) >= reviewers_needed:
            labels[i] = next(iter(by.values()))
    return labels, conflicts


def decision_times(decisions_by_reviewer, resolutions):
    """{id: the time its label was settled} (the latest decision or resolution on it)."""
    times = {}
    for decisions in decisions_by_reviewer.values():
        for i, d in decisions.items():
            times[i] = max(times.get(i, 0.0), d.get("time", 0.0))
    for i, r in resolutions.items():
        times[i] = max(times.get(i, 0.0), r.get("time", 0.0))
    return times


def labels_in_order(labels, previous_ids, times):
    """The labels file's rows (id, judgement): the ids already in the file in its order, then the newly resolved
    ones in the order they were settled, as a reviewer appends to the file."""
    previous = [i for i in dict.fromkeys(previous_ids) if i in labels]
    seen = set(previous)
    new = sorted((i for i in labels if i not in seen), key=lambda i: times.get(i, 0.0))
    ids = previous + new
    return pd.DataFrame({"id": ids, "judgement": [labels[i] for i in ids]}, dtype=object)


def agreement(first, second):
    """Agreement of two reviewers on the records both included or excluded: the 2x2 table (rows the first
    reviewer, columns the second; exclude then include), the share of agreement and Cohen's kappa (NaN when it
    is undefined: fewer than one record, or both gave one class only)."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    a, b = decided_labels(first), decided_labels(second)
    both = [i for i in a if i in b]
    x = np.asarray([a[i] for i in both], dtype=int)
    y = np.asarray([b[i] for i in both], dtype=int)
    table = confusion_matrix(x, y, labels=[0, 1]) if both else np.zeros((2, 2), dtype=int)
    kappa = float("nan")
    if both and len(set(x) | set(y)) > 1:
        kappa = float(cohen_kappa_score(x, y, labels=[0, 1]))
    share = float((x == y).mean()) if both else float("nan")
    return {"records": len(both), "table": table.tolist(), "agreement": share, "kappa": kappa}


def undoable(decisions, screened_ids):
    """The id of the reviewer's last decision that has not reached the screened stream (the ranker has not seen
    it), or None: a label the review has read cannot be taken back, only changed."""
    screened = set(screened_ids)
    for i in sorted(decisions, key=lambda i: decisions[i].get("time", 0.0), reverse=True):
        if i not in screened:
            return i
    return None


def normalise(text):
    """Lower case, runs of anything but letters and digits as one space."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", str(text).lower()).split())


def find_duplicates(records, threshold=0.9, chunk=512):
    """Exact and near-exact duplicate records (columns id, title, abstract). Exact: the same normalised title and
    abstract (or the same title, one abstract missing); near-exact: a Jaccard similarity of the title+abstract word
    sets of at least `threshold`. Returns a DataFrame id, duplicate_of, kind (exact/near-exact), similarity: one row per
    record to drop, `duplicate_of` the first record of its group in file order (the one kept)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.feature_extraction.text import CountVectorizer

    columns = ["id", "duplicate_of", "kind", "similarity"]
    n = len(records)
    if n < 2:
        return pd.DataFrame(columns=columns)
    titles = records["title"].map(normalise).to_numpy()
    texts = (records["title"].map(normalise) + " " + records["abstract"].map(normalise)).to_numpy()
    try:
        words = CountVectorizer(binary=True, token_pattern=r"\S+").fit_transform(texts).tocsr().astype(np.float64)
    except ValueError:  # no words at all
        words = None
    rows, cols, sims = [], [], []
    if words is not None:
        sizes = np.asarray(words.sum(axis=1)).ravel()
        for start in range(0, n, chunk):
            inter = (words[start : start + chunk] @ words.T).tocoo()
            r, c = inter.row + start, inter.col
            union = sizes[r] + sizes[c] - inter.data
            jaccard = np.divide(inter.data, union, out=np.zeros_like(union), where=union > 0)
            keep = (r < c) & (jaccard >= threshold)
            rows += r[keep].tolist()
            cols += c[keep].tolist()
            sims += jaccard[keep].tolist()
    abstracts = records["abstract"].map(normalise).to_numpy()
    by_title = pd.Series(np.arange(n)).groupby(titles).apply(list)
    for title, members in by_title.items():
        for a, b in zip(members[:-1], members[1:]):
            if title and (abstracts[a] == abstracts[b] or not abstracts[a] or not abstracts[b]):
                rows.append(a)
                cols.append(b)
                sims.append(np.nan)
    if not rows:
        return pd.DataFrame(columns=columns)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, group = connected_components(graph, directed=False)
    best = {}
    for r, c, s in zip(rows, cols, sims):
        for k in (r, c):
            if not np.isnan(s):
                best[k] = max(best.get(k, 0.0), s)
    out = []
    ids = records["id"].to_numpy()
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        if members.size < 2:
            continue
        kept = members[0]
        for m in members[1:]:
            same = titles[m] == titles[kept] and (
                abstracts[m] == abstracts[kept] or not abstracts[m] or not abstracts[kept]
            )
            kind = "exact" if same else "near-exact"
            similarity = 1.0 if kind == "exact" else best.get(m, np.nan)
            out.append((ids[m], ids[kept], kind, similarity))
    return pd.DataFrame(out, columns=columns)


def keyword_search(records, query, limit=20):
    """Rows of `records` whose title or abstract holds every word of `query` (case-insensitive), title matches
    first; at most `limit`."""
    words = normalise(query).split()
    if not words:
        return records.iloc[:0]
    titles = records["title"].map(normalise)
    texts = titles + " " + records["abstract"].map(normalise)
    hit = np.logical_and.reduce([texts.str.contains(rf"\b{re.escape(w)}", regex=True) for w in words])
    in_title = np.logical_and.reduce([titles.str.contains(rf"\b{re.escape(w)}", regex=True) for w in words])
    found = records[hit].assign(_title=in_title[hit])
    return found.sort_values("_title", ascending=False, kind="stable").drop(columns="_title").head(limit)
