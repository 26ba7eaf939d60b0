"""The browser app (Gradio Blocks) over a review folder: start from a search export, screen one record at a time,
follow the progress and the stopping rules, resolve two reviewers' conflicts, export. All its logic is in
`screening.app.folder` and `screening.active.decisions`; this module only lays out the page."""

import html
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import outputs
from ..active import decisions as dec
from ..active.review import includes_missed, measured_reliability, steady_progress
from ..errors import ScreeningInputError
from .folder import CARD_COLUMNS, ReviewFolder, inspect_upload

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
UPLOAD_TYPES = [".csv", ".tsv", ".tab", ".json", ".jsonl", ".xlsx", ".ris", ".txt"]

# i / e / m / u press Include / Exclude / Maybe / Undo, except while typing in a field
KEYS_JS = """
<script>
document.addEventListener('keydown', (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA' || target.isContentEditable)) return;
  const ids = {i: 'include-btn', e: 'exclude-btn', m: 'maybe-btn', u: 'undo-btn'};
  const button = ids[event.key] && document.getElementById(ids[event.key]);
  if (button && !button.disabled) { event.preventDefault(); button.click(); }
});
</script>
"""
CSS = """
#include-btn { background: #3c9a34; color: white; }
#card .record { font-size: 1.05em; line-height: 1.5; }
#card mark.include { background: #b9f0b4; } #card mark.exclude { background: #f6b8b8; }
.stop-panel { padding: 0.6em 1em; border-radius: 6px; border: 2px solid; }
.stop-panel.stop { background: #e3f6e0; border-color: #3c9a34; }
.stop-panel.heuristic { background: #fff6dc; border-color: #c99a1c; }
.stop-panel.estimate { background: #e2efff; border-color: #2f6fc0; }
"""


@dataclass
class AppArguments:
    """Where the review lives and how the app is served."""

    output_dir: str = field(
        metadata={"help": "The review's folder (the same as `screen --output_dir`): state.json, labels.csv, ..."}
    )
    records_file: str = field(
        default=None,
        metadata={
            "help": "A search export to open on the Start page (.csv, .tsv, .jsonl, .xlsx, .ris); or upload one "
            "in the browser. For a folder `screen` made, the records file it was made with."
        },
    )
    id_column: str = field(default="id", metadata={"help": "Column of record ids in the search export."})
    dual_screening: bool = field(
        default=False,
        metadata={"help": "Two reviewers decide every record independently; labels.csv holds only agreed or "
                  "resolved labels."},
    )  # fmt: skip
    duplicate_threshold: float = field(
        default=0.9, metadata={"help": "Near-exact duplicates: title+abstract word-set Jaccard at least this."}
    )
    host: str = field(
        default="127.0.0.1",
        metadata={"help": "Address to listen on. Any other than 127.0.0.1/localhost requires --auth_file."},
    )
    port: int = field(default=7860, metadata={"help": "Port to listen on."})
    auth_file: str = field(
        default=None,
        metadata={"help": "Logins, one user:password per line; each user is a reviewer and writes only their own "
                  "decisions."},
    )  # fmt: skip

    def check(self):
        if not 0 < self.duplicate_threshold <= 1:
            raise ScreeningInputError(f"--duplicate_threshold must be in (0, 1]; got {self.duplicate_threshold}")
        if self.host not in LOCAL_HOSTS and not self.auth_file:
            raise ScreeningInputError(
                f"--host {self.host} serves the app beyond this machine: give --auth_file (user:password lines)"
            )
        return self


def read_auth_file(path):
    """[(user, password)] from user:password lines (blank lines and # comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise ScreeningInputError(f"--auth_file: file not found: {path}")
    logins = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ScreeningInputError(f"--auth_file: {path}: line {n} is not user:password")
        logins.append((user.strip(), password))
    if not logins:
        raise ScreeningInputError(f"--auth_file: {path} holds no user:password line")
    return logins


def terms(text):
    return [t.strip() for t in re.split(r"[,;\n]", text or "") if t.strip()]


def highlight(text, include_terms, exclude_terms):
    """The text HTML-escaped, each term (case-insensitive, at a word start) in <mark class=include/exclude>."""
    escaped = html.escape(text or "")
    marks = [(t, "include") for t in terms(include_terms)] + [(t, "exclude") for t in terms(exclude_terms)]
    if not marks:
        return escaped
    kind_of = {html.escape(t).lower(): kind for t, kind in marks}
    pattern = "|".join(re.escape(html.escape(t)) for t, _ in sorted(marks, key=lambda m: -len(m[0])))
    return re.sub(
        rf"\b({pattern})",
        lambda m: f'<mark class="{kind_of.get(m.group(1).lower(), "include")}">{m.group(1)}</mark>',
        escaped,
        flags=re.IGNORECASE,
    )


def card_html(row, include_terms="", exclude_terms=""):
    """A record as HTML: title, abstract, authors, year, journal and a DOI link where the file has them."""
    if row is None:
        return '<div class="record" data-record-id="">No record to show.</div>'
    get = {c: str(row.get(c, "") or "") for c in CARD_COLUMNS}
    doi = get["doi"].removeprefix("https://doi.org/")
    link = f'<a href="https://doi.org/{html.escape(doi)}" target="_blank">doi:{html.escape(doi)}</a>' if doi else ""
    meta = [html.escape(v) for v in (get["authors"], get["year"], get["journal"]) if v]
    meta = " · ".join([*meta, *([link] if link else []), f"id {html.escape(row['id'])}"])
    return (
        f'<div class="record" data-record-id="{html.escape(row["id"])}">'
        f"<h3>{highlight(get['title'], include_terms, exclude_terms)}</h3>"
        f"<p><small>{meta}</small></p>"
        f"<p>{highlight(get['abstract'], include_terms, exclude_terms)}</p></div>"
    )


def progress_markdown(verdict):
    """Records read, includes found, the certified frontier, each rule's verdict and the recommended rule."""
    if not verdict:
        return "No batch screened yet."
    front = verdict["frontier"]
    lines = [
        f"**Read {verdict['records_read']} of {verdict['records']} records; {verdict['includes_found']} includes "
        f"found.**",
        "",
        f"Certified frontier: recall >= {front['recall_bound']:.3f} at confidence {verdict['confidence']:g}; the "
        f"target {verdict['target_recall']:g} holds at confidence {front['target_confidence']:.3f}; "
        f"{includes_missed(front['expected_missed_high'])}.",
        "",
        "| rule | verdict | recall estimate | interval | guarantee |",
        "|---|---|---|---|---|",
    ]
    for name, rule in verdict["rules"].items():
        estimate, interval = rule.get("recall_estimate"), rule.get("interval")
        estimate = f"{estimate:.3f}" if isinstance(estimate, (int, float)) else rule.get("status", "")
        interval = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if isinstance(interval, (list, tuple)) else ""
        guarantee = rule.get("guarantee", "")
        lines.append(f"| `{name}` | {'STOP' if rule['stop'] else 'go on'} | {estimate} | {interval} | {guarantee} |")
    if verdict.get("recommended"):
        name = _rule_name(verdict["recommended"])
        held = steady_progress(verdict["rules"].get(name, {}))
        lines += ["", f"Recommended rule: **`{name}`**" + (f" ({held})." if held else ".")]
    return "\n".join(lines)


def _rule_name(recommended):
    return (
        recommended.get("rule", recommended.get("name", str(recommended)))
        if isinstance(recommended, dict)
        else (str(recommended))
    )


def stop_html(verdict):
    """The panel that says the reviewer may stop: green when a certified rule says stop (a guarantee); blue when
    the recommended rule, an estimate measured on the benchmark reviews, says stop; amber when only other rules
    (heuristics, unrecommended estimates) do; empty while every rule says go on."""
    if not verdict:
        return ""
    stopping = {n: r for n, r in verdict["rules"].items() if r["stop"]}
    if not stopping:
        return ""
    target, confidence = verdict["target_recall"], verdict["confidence"]
    certified = [n for n, r in stopping.items() if r.get("guarantee", "certified") == "certified"]
    recommended = verdict.get("recommended")
    tail = (f" Recommended rule: {html.escape(_rule_name(recommended))}." if recommended else "") + (
        " The report is on the Export tab.</div>"
    )
    if certified:
        return (
            f'<div class="stop-panel stop"><b>You may stop.</b> The {html.escape(certified[0])} rule certifies '
            f"recall >= {target:g} at confidence {confidence:g} after {verdict['records_read']} of "
            f"{verdict['records']} records ({verdict['includes_found']} includes)." + tail
        )
    if recommended in stopping:
        rule, measured = stopping[recommended], verdict.get("recommended_measured") or {}
        estimate = rule.get("recall_estimate")
        reliability = measured.get("reliability")
        return (
            f'<div class="stop-panel estimate"><b>The recommended rule says stop.</b> {html.escape(recommended)} '
            f"(an estimate, not a guarantee)"
            + (f" estimates recall {estimate:.3f}" if isinstance(estimate, (int, float)) else "")
            + (
                f"; it reached the target in {measured_reliability(measured)}"
                if isinstance(reliability, (int, float))
                else ""
            )
            + f". No certified rule says stop yet at {target:g}. The report is on the Export tab.</div>"
        )
    kinds = {n: "no guarantee" if r.get("guarantee") == "none" else "an estimate" for n, r in stopping.items()}
    return (
        f'<div class="stop-panel heuristic"><b>A rule says stop:</b> '
        f"{html.escape(', '.join(f'{n} ({k})' for n, k in kinds.items()))}. No certified rule says stop yet.</div>"
    )


def agreement_markdown(decisions):
    """Cohen's kappa and the agreement of the first two reviewers, with their 2x2 table."""
    names = sorted(decisions)
    if len(names) < 2:
        return "Agreement needs two reviewers' decisions."
    a, b = names[:2]
    stats = dec.agreement(decisions[a], decisions[b])
    t = stats["table"]
    kappa = "undefined" if math.isnan(stats["kappa"]) else f"{stats['kappa']:.3f}"
    share = "" if math.isnan(stats["agreement"]) else f"{stats['agreement']:.3f}"
    return (
        f"**{a} and {b}**: {stats['records']} records both decided; agreement {share}; Cohen's kappa {kappa}.\n\n"
        f"| {a} \\ {b} | exclude | include |\n|---|---|---|\n| exclude | {t[0][0]} | {t[0][1]} |\n"
        f"| include | {t[1][0]} | {t[1][1]} |"
    )


def build_app(folder, args, logins=None):
    """The gr.Blocks page over `folder` (a ReviewFolder)."""
    import gradio as gr

    def who(name, request: gr.Request):
        user = getattr(request, "username", None) if request is not None else None
        if user:
            return user
        name = (name or "").strip()
        if not name:
            raise ScreeningInputError("enter your reviewer name first")
        return name

    def choice(row):
        return (f"{row['title'][:120]} [{row['id']}]", row["id"])

    def render(name, request, terms=False):
        """Every view's content for this reviewer (the highlight terms' fields only with `terms`: on load, so that
        a field being typed in is never overwritten)."""
        try:
            reviewer = who(name, request)
        except ScreeningInputError as err:
            reviewer, message = None, str(err)
        else:
            message = ""
        started = folder.started
        table = folder.table().set_index("id", drop=False) if started else None  # search.csv, read once a render
        status = f"Review folder `{folder.out}`: {'started' if started else 'no review yet'}." + (
            f" {len(table)} records under review." if started else ""
        )
        record, maybes, conflicts_choices, payload = None, [], [], {"include_terms": "", "exclude_terms": ""}
        if started and reviewer:
            try:
                record_id, info = folder.next_record(reviewer)
            except ScreeningInputError as err:
                record_id, info = None, f"error: {err}"
            message = message or info
            record = table.loc[record_id].to_dict() if record_id else None
            payload = folder.reviewer(reviewer)
            labels, conflicts = folder.resolved()
            mine = payload.get("decisions", {})
            maybes = [choice(table.loc[i]) for i, d in mine.items() if d["judgement"] == dec.MAYBE and i not in labels]
            conflicts_choices = [choice(table.loc[i]) for i in conflicts]
        verdict = folder.verdict() if started else None
        counts = ""
        if verdict and reviewer:
            batch = folder.batch()
            done = sum(i in payload.get("decisions", {}) for i in batch)
            counts = (
                f"Read {verdict['records_read']} of {verdict['records']} · includes found "
                f"{verdict['includes_found']} · this batch: {done} of {len(batch)} decided by {reviewer}"
            )
        curve = folder.out / outputs.RECALL_CURVE
        inc, exc = payload.get("include_terms", ""), payload.get("exclude_terms", "")
        return (
            status,
            gr.update(interactive=not started),
            stop_html(verdict),
            card_html(record, inc, exc),
            record["id"] if record else None,
            "",
            message,
            gr.update(choices=maybes, value=None),
            progress_markdown(verdict),
            stop_html(verdict),
            str(curve) if curve.is_file() else None,
            agreement_markdown(folder.decisions()) if started else "",
            gr.update(choices=conflicts_choices, value=None),
            inc if terms else gr.update(),
            exc if terms else gr.update(),
            counts,
        )

    with gr.Blocks(title="Screening", analytics_enabled=False) as app:
        gr.Markdown("## Prioritised screening")
        reviewer = gr.Textbox(
            label="Reviewer", value="" if logins else "reviewer", elem_id="reviewer", visible=not logins
        )
        upload_state = gr.State(None)
        priors_state = gr.State({})
        current = gr.State(None)
        with gr.Tabs():
            with gr.Tab("Start", id="start"):
                status = gr.Markdown(elem_id="status")
                upload = gr.File(label="Search export", file_types=UPLOAD_TYPES, elem_id="upload")
                upload_message = gr.Markdown(elem_id="upload-message")
                duplicates = gr.CheckboxGroup(label="Duplicates to drop (never shown)", elem_id="duplicates")
                gr.Markdown("#### Prior knowledge: records you already know")
                with gr.Row():
                    query = gr.Textbox(label="Keyword search", elem_id="search-box", scale=4)
                    search_button = gr.Button("Search", elem_id="search-btn", scale=1)
                results = gr.Radio(label="Results", elem_id="search-results", choices=[])
                with gr.Row():
                    prior_include = gr.Button("Include", elem_id="prior-include-btn")
                    prior_exclude = gr.Button("Exclude", elem_id="prior-exclude-btn")
                priors_message = gr.Markdown(elem_id="priors-message")
                start_button = gr.Button("Start screening", variant="primary", elem_id="start-btn")
            with gr.Tab("Screen", id="screen"):
                banner = gr.HTML(elem_id="stop-banner")
                counts = gr.Markdown(elem_id="screen-counts")
                with gr.Row():
                    include_terms = gr.Textbox(label="Include terms (green)", elem_id="include-terms")
                    exclude_terms = gr.Textbox(label="Exclude terms (red)", elem_id="exclude-terms")
                card = gr.HTML(elem_id="card")
                note = gr.Textbox(label="Note on this record", elem_id="note")
                with gr.Row():
                    include_button = gr.Button("Include (i)", variant="primary", elem_id="include-btn")
                    exclude_button = gr.Button("Exclude (e)", variant="stop", elem_id="exclude-btn")
                    maybe_button = gr.Button("Maybe (m)", elem_id="maybe-btn")
                    undo_button = gr.Button("Undo (u)", elem_id="undo-btn")
                screen_message = gr.Markdown(elem_id="screen-message")
                maybe_list = gr.Radio(label="Maybe: decide later", choices=[], elem_id="maybes")
                with gr.Row():
                    maybe_include = gr.Button("Include this maybe", elem_id="maybe-include-btn")
                    maybe_exclude = gr.Button("Exclude this maybe", elem_id="maybe-exclude-btn")
            with gr.Tab("Progress", id="progress"):
                progress = gr.Markdown(elem_id="progress")
                progress_stop = gr.HTML(elem_id="progress-stop")
                curve = gr.Image(label="Recall curve", type="filepath", elem_id="curve", interactive=False)
            with gr.Tab("Conflicts", id="conflicts"):
                agreement = gr.Markdown(elem_id="agreement")
                conflict_list = gr.Radio(label="Conflicts", choices=[], elem_id="conflicts")
                with gr.Row():
                    resolve_include = gr.Button("Resolve: include", elem_id="resolve-include-btn")
                    resolve_exclude = gr.Button("Resolve: exclude", elem_id="resolve-exclude-btn")
            with gr.Tab("Export", id="export"):
                export_button = gr.Button("Prepare the downloads", elem_id="export-btn")
                files = gr.File(label="Downloads", file_count="multiple", elem_id="downloads", interactive=False)

        views = [status, start_button, banner, card, current, note, screen_message, maybe_list, progress,
                 progress_stop, curve, agreement, conflict_list, include_terms, exclude_terms, counts]  # fmt: skip

        def refresh(name, request: gr.Request):
            return render(name, request, terms=True)

        def on_upload(path):
            """Read and check the upload; a bad one is answered on the page, cleared, and nothing is written."""
            if not path:
                return gr.update(), gr.update(), gr.update(), gr.update()
            if folder.started:
                message = f"**error:** {folder.out} already holds a review."
                return None, message, gr.update(choices=[], value=[]), gr.update(value=None)
            try:
                found = inspect_upload(path, args.id_column, args.duplicate_threshold)
            except ScreeningInputError as err:
                message = f"**error:** {err}".replace(str(Path(path).parent) + os.sep, "")
                return None, message, gr.update(choices=[], value=[]), gr.update(value=None)
            table, dups = found.table, found.duplicates
            title_of = dict(zip(table["id"], table["title"]))
            counts = [f"**{len(table)} records**", f"{(table['abstract'].str.strip() != '').sum()} with an abstract"]
            for column in ("authors", "year", "journal", "doi"):
                if column in table.columns:
                    counts.append(f"{(table[column].str.strip() != '').sum()} with {column}")
            counts.append(f"{len(dups)} duplicates ({(dups['kind'] == 'exact').sum()} exact)")
            options = [
                (f"{r.kind}: '{title_of[r.id][:80]}' [{r.id}] duplicates [{r.duplicate_of}]", r.id)
                for r in dups.itertuples()
            ]
            return (
                found,
                "; ".join(counts) + ".",
                gr.update(choices=options, value=[o[1] for o in options]),
                gr.update(),
            )

        def search(text, found):
            records = folder.records() if folder.started else (found.table if found is not None else None)
            if records is None:
                return gr.update(choices=[], value=None), "Upload a search export first."
            hits = dec.keyword_search(records, text, limit=10)
            return gr.update(choices=[choice(r) for _, r in hits.iterrows()], value=None), f"{len(hits)} records found."

        def add_prior(label):
            def handler(record_id, priors, name, request: gr.Request):
                if not record_id:
                    return priors, "Pick a search result first."
                reviewer_name = who(name, request)
                if folder.started:
                    folder.settle(record_id, label, reviewer_name, source="prior")
                else:
                    priors = {**priors, record_id: label}
                word = "include" if label else "exclude"
                return priors, f"Prior {word}: {record_id}. Priors so far: {len(priors) or 'written to labels.csv'}"

            return handler

        def start(found, drop, priors, name, request: gr.Request):
            if found is None:
                return *render(name, request), "**error:** upload a search export first."
            try:
                folder.start(found, drop or [], priors, who(name, request))
            except ScreeningInputError as err:
                return *render(name, request), f"**error:** {err}"
            return *render(name, request), "Review started: screen on the Screen tab."

        def decide(judgement):
            def handler(record_id, note_text, name, request: gr.Request):
                reviewer_name = who(name, request)
                if record_id and record_id not in folder.reviewer(reviewer_name).get("decisions", {}):
                    folder.decide(reviewer_name, record_id, judgement, note_text)
                return render(name, request)

            return handler

        def undo(name, request: gr.Request):
            folder.undo(who(name, request))
            return render(name, request)

        def decide_maybe(judgement):
            def handler(record_id, name, request: gr.Request):
                reviewer_name = who(name, request)
                if record_id:
                    note_text = folder.reviewer(reviewer_name)["decisions"].get(record_id, {}).get("note", "")
                    folder.decide(reviewer_name, record_id, judgement, note_text)
                return render(name, request)

            return handler

        def resolve_conflict(label):
            def handler(record_id, name, request: gr.Request):
                if record_id:
                    folder.settle(record_id, label, who(name, request))
                return render(name, request)

            return handler

        def save_terms(inc, exc, name, request: gr.Request):
            folder.set_terms(who(name, request), inc, exc)
            return render(name, request)

        def export(name, request: gr.Request):
            return folder.export() if folder.started else None

        app.load(refresh, [reviewer], views)
        reviewer.submit(refresh, [reviewer], views)
        upload_views = [upload_state, upload_message, duplicates, upload]
        upload.upload(on_upload, [upload], upload_views)
        if args.records_file:  # opened on the Start page until the review starts

            def preload():
                return (gr.update(),) * 4 if folder.started else on_upload(args.records_file)

            app.load(preload, None, upload_views)
        search_button.click(search, [query, upload_state], [results, priors_message])
        query.submit(search, [query, upload_state], [results, priors_message])
        prior_include.click(add_prior(1), [results, priors_state, reviewer], [priors_state, priors_message])
        prior_exclude.click(add_prior(0), [results, priors_state, reviewer], [priors_state, priors_message])
        start_button.click(start, [upload_state, duplicates, priors_state, reviewer], [*views, upload_message])
        for button, judgement in ((include_button, dec.INCLUDE), (exclude_button, dec.EXCLUDE),
                                  (maybe_button, dec.MAYBE)):  # fmt: skip
            button.click(decide(judgement), [current, note, reviewer], views)
        undo_button.click(undo, [reviewer], views)
        maybe_include.click(decide_maybe(dec.INCLUDE), [maybe_list, reviewer], views)
        maybe_exclude.click(decide_maybe(dec.EXCLUDE), [maybe_list, reviewer], views)
        resolve_include.click(resolve_conflict(1), [conflict_list, reviewer], views)
        resolve_exclude.click(resolve_conflict(0), [conflict_list, reviewer], views)
        include_terms.submit(save_terms, [include_terms, exclude_terms, reviewer], views)
        exclude_terms.submit(save_terms, [include_terms, exclude_terms, reviewer], views)
        export_button.click(export, [reviewer], [files])
    return app


def launch(args, ranker_args, loop_args, stop_args):
    """Open the review folder (adopting one `screen` made) and serve the app until interrupted."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    logins = read_auth_file(args.auth_file) if args.auth_file else None
    folder = ReviewFolder(args.output_dir, ranker_args, loop_args, stop_args, dual=args.dual_screening)
    if not folder.started and (folder.out / outputs.STATE).is_file():
        if not args.records_file:
            raise ScreeningInputError(
                f"--output_dir {folder.out} holds a review made by `screen`: give its --records_file"
            )
        folder.adopt(args.records_file, args.id_column)
    folder.import_labels()
    app = build_app(folder, args, logins)
    print(f"Serving the review in {folder.out} on http://{args.host}:{args.port}", flush=True)
    app.queue(default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        auth=logins,
        allowed_paths=[str(folder.out.resolve())],
        head=KEYS_JS,
        css=CSS,
        show_error=True,
        quiet=True,
        footer_links=[],
    )
