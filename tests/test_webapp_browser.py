"""The browser app in a real browser (Debian's chromium driven by playwright), served by `run_screening.py app` on
127.0.0.1 and a free port: import the demo search, screen by clicks and keys until a rule says stop, export, and find
the same labels and stream as `screen` given the same decisions; two reviewers with a planted conflict; a server
killed mid-review; bad uploads."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import screenshots as ui  # noqa: E402

pytestmark = pytest.mark.skipif(
    not Path(ui.CHROMIUM).exists() and not os.environ.get("CI"),  # in CI (.ci/run installs it) a missing one fails
    reason="needs Debian's chromium at /usr/bin/chromium (README, command 2)",
)


@pytest.fixture(scope="module")
def chromium():
    pytest.importorskip("playwright")
    with ui.browser() as b:
        yield b


def read_csv(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def start_review(page, review, priors=(("penicillamine zinc", "include"), ("tetrathiomolybdate crystallographic",
                                                                           "exclude"))):  # fmt: skip
    """Upload the demo search, drop its duplicate, mark one known include and one exclude found by keywords, start."""
    ui.upload(page, ui.DEMO_SEARCH)
    ui.wait_text(page, "#upload-message", "400 records")
    assert "1 duplicates" in ui.text_of(page, "#upload-message")
    for words, judgement in priors:
        ui.search(page, words)
        page.locator("#search-results label").first.click()
        page.click(f"#prior-{judgement}-btn")
        ui.wait_text(page, "#priors-message", f"Prior {judgement}")
    page.click("#start-btn")
    ui.wait_text(page, "#upload-message", "Review started")
    ui.tab(page, "Screen")
    page.wait_for_selector("#card .record[data-record-id^='r']")


def test_bad_uploads_answered_on_the_page_and_nothing_written(chromium, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "no_title.csv").write_text("id,abstract\n1,some text\n")
    review = tmp_path / "review"
    with ui.serve_app(["--output_dir", str(review), *ui.FAST]) as server:
        page = ui.open_page(chromium, server.url)
        ui.upload(page, tmp_path / "empty.csv")
        ui.wait_text(page, "#upload-message", "error")
        assert "empty.csv is empty" in ui.text_of(page, "#upload-message")
        ui.upload(page, tmp_path / "no_title.csv")
        ui.wait_text(page, "#upload-message", "title")
        message = ui.text_of(page, "#upload-message")
        assert "no_title.csv" in message and "error" in message
        page.click("#start-btn")
        ui.wait_text(page, "#upload-message", "upload a search export first")
    assert not review.exists()


def test_screen_by_clicks_and_keys_until_stop_then_export_equals_the_command(chromium, tmp_path):
    truth = ui.demo_truth()
    review = tmp_path / "review"
    with ui.serve_app(["--output_dir", str(review), *ui.FAST]) as server:
        page = ui.open_page(chromium, server.url)
        start_review(page, review)
        titles = read_csv(review / "search.csv").set_index("id").title
        assert len(titles) == 399  # the duplicate is dropped and never shown
        dropped = read_csv(review / "duplicates.csv").id.tolist()
        seen, step = [], 0
        while not ui.text_of(page, "#stop-banner").strip():
            rid = ui.card_id(page)
            assert rid and rid not in dropped and rid not in seen
            label = truth[titles[rid]]
            if step == 0:  # a maybe: set aside, never in labels.csv until decided
                page.keyboard.press("m")
                rid_next = ui.wait_card_change(page, rid)
                assert rid not in read_csv(review / "labels.csv").id.tolist()
                ui.pick(page, "#maybes", rid)
                page.click("#maybe-include-btn" if label else "#maybe-exclude-btn")
                page.wait_for_function("() => !document.querySelector('#maybes').innerText.includes('[')")
                assert rid in read_csv(review / "labels.csv").id.tolist() and ui.card_id(page) == rid_next
            elif step % 2:
                page.keyboard.press("i" if label else "e")
            else:
                page.click("#include-btn" if label else "#exclude-btn")
            if step:
                ui.wait_card_change(page, rid)
            seen.append(rid)
            step += 1
            assert step < 120
        banner = ui.text_of(page, "#stop-banner")
        assert "rule says stop" in banner or "You may stop" in banner
        ui.tab(page, "Progress")
        page.wait_for_selector("#curve img")
        assert "consecutive_excludes | STOP" in ui.text_of(page, "#progress").replace("\t", " | ")
        ui.tab(page, "Export")
        page.click("#export-btn")
        page.wait_for_selector("#downloads a")
        names = page.locator("#downloads").inner_text().replace("\n", "")
        for name in ("labels.csv", "search_decisions.csv", "search_decisions.ris", "summary.md", "recall_curve.png"):
            assert name in names
    exported = read_csv(review / "export/search_decisions.csv").set_index("id")
    labels = read_csv(review / "labels.csv")
    assert len(exported) == 400 and exported.decision[dropped[0]] == "duplicate"
    assert (exported.label[labels.id] == labels.judgement.to_numpy()).all()
    assert "ID  - " in (review / "export/search_decisions.ris").read_text()
    # the same decisions through the command, in a fresh folder: the same labels file and the same stream
    state = json.loads((review / "state.json").read_text())
    replay, batches = tmp_path / "replay", state["batches"]
    in_batches = {i for b in batches for i in b["ids"]}
    shown = set()
    for batch in [{"ids": []}, *batches[:-1]]:
        shown |= set(batch["ids"])
        cut = labels[labels.id.isin(shown) | ~labels.id.isin(in_batches)]
        cut.to_csv(tmp_path / "labels.csv", index=False)
        subprocess.run(
            [sys.executable, "run_screening.py", "screen", "--records_file", str(review / "search.csv"),
             "--labels_file", str(tmp_path / "labels.csv"), "--output_dir", str(replay), *ui.FAST],
            cwd=REPO, check=True, capture_output=True,
        )  # fmt: skip
    assert (tmp_path / "labels.csv").read_text() == (review / "labels.csv").read_text()
    replayed = json.loads((replay / "state.json").read_text())
    assert replayed["stream"] == state["stream"] and replayed["batches"] == batches


def test_two_logged_in_reviewers_conflict_resolved_and_kappa(chromium, tmp_path):
    truth = ui.demo_truth()
    review = tmp_path / "review"
    (tmp_path / "logins.txt").write_text("alice:pw-alice\nbob:pw-bob\n")
    args = ["--output_dir", str(review), "--dual_screening", "--auth_file", str(tmp_path / "logins.txt"), *ui.FAST]
    with ui.serve_app(args) as server:
        alice = ui.open_page(chromium, server.url, login=("alice", "pw-alice"))
        assert not alice.locator("#reviewer").is_visible()  # the login is the reviewer's name
        start_review(alice, review)
        bob = ui.open_page(chromium, server.url, login=("bob", "pw-bob"))
        ui.tab(bob, "Screen")
        bob.wait_for_selector("#card .record[data-record-id^='r']")
        titles = read_csv(review / "search.csv").set_index("id").title
        batch = json.loads((review / "state.json").read_text())["batches"][-1]["ids"]
        planted = batch[1]
        given = {"alice": {}, "bob": {}}
        for rid in batch:
            for name, page in (("alice", alice), ("bob", bob)):
                assert ui.card_id(page) == rid
                label = truth[titles[rid]]
                if name == "bob" and rid == planted:
                    label = 1 - label
                given[name][rid] = label
                page.click("#include-btn" if label else "#exclude-btn")
                if rid != batch[-1]:
                    ui.wait_card_change(page, rid)
                else:
                    ui.wait_text(page, "#screen-message", "Batch done")
            # neither sees the other's decision: the pair's agreed label is the only trace in labels.csv
            labels = read_csv(review / "labels.csv")
            assert (rid in labels.id.tolist()) == (rid != planted)
        ui.wait_text(bob, "#screen-message", "conflicts to resolve")
        ui.tab(bob, "Conflicts")
        bob.wait_for_selector("#conflicts label")
        # Cohen's kappa by hand from the 2x2 table of the priors' batch
        a, b = [given["alice"][i] for i in batch], [given["bob"][i] for i in batch]
        table = [[sum(x == r and y == c for x, y in zip(a, b)) for c in (0, 1)] for r in (0, 1)]
        n = len(batch)
        po = (table[0][0] + table[1][1]) / n
        pe = sum((sum(table[k]) / n) * ((table[0][k] + table[1][k]) / n) for k in (0, 1))
        text = ui.text_of(bob, "#agreement")
        if pe < 1:
            assert f"Cohen's kappa {(po - pe) / (1 - pe):.3f}" in text
        else:
            assert "undefined" in text
        assert f"agreement {po:.3f}" in text and f"{n} records both decided" in text
        ui.pick(bob, "#conflicts", planted)
        resolved = truth[titles[planted]]
        bob.click("#resolve-include-btn" if resolved else "#resolve-exclude-btn")
        bob.wait_for_function("() => !document.querySelector('#conflicts').innerText.includes('[')")
        labels = read_csv(review / "labels.csv").set_index("id").judgement
        assert labels[planted] == str(resolved) and set(batch) <= set(labels.index)
        assert len(json.loads((review / "state.json").read_text())["batches"]) == 2  # the resolution made the batch
        assert sorted(p.name for p in (review / "reviewers").iterdir()) == ["alice.json", "bob.json"]


def test_undo_then_server_killed_mid_review_restarts_with_nothing_lost(chromium, tmp_path):
    truth = ui.demo_truth()
    review = tmp_path / "review"
    args = ["--output_dir", str(review), *ui.FAST]
    server = ui.AppServer(args).start()
    try:
        page = ui.open_page(chromium, server.url)
        start_review(page, review)
        titles = read_csv(review / "search.csv").set_index("id").title
        decided = []
        for _ in range(7):
            rid = ui.card_id(page)
            page.locator("#note textarea, #note input").first.fill(f"note on {rid}")
            page.click("#include-btn" if truth[titles[rid]] else "#exclude-btn")
            ui.wait_card_change(page, rid)
            decided.append(rid)
        page.locator("#card").click()  # out of the note field: the keys go to the page
        page.keyboard.press("u")  # undo: the last record comes back
        undone = decided.pop()
        assert ui.wait_card_change(page, ui.card_id(page)) == undone
        shown = ui.card_id(page)
        server.kill()  # SIGKILL: no clean-up
        files = {p.name: p.read_bytes() for p in review.iterdir() if p.is_file()}
        server = ui.AppServer(args, port=server.port).start()
        page.reload()
        ui.tab(page, "Screen")
        page.wait_for_selector("#card .record[data-record-id^='r']")
        assert ui.card_id(page) == shown
        assert {p.name: p.read_bytes() for p in review.iterdir() if p.is_file()} == files  # restart changed nothing
        mine = json.loads((review / "reviewers/reviewer.json").read_text())["decisions"]
        assert sorted(mine, key=lambda i: mine[i]["time"]) == decided
        assert mine[decided[-1]]["note"] == f"note on {decided[-1]}"
        assert set(decided) <= set(read_csv(review / "labels.csv").id) and undone not in mine
        assert undone not in set(read_csv(review / "labels.csv").id)
    finally:
        server.stop()
    shutil.rmtree(review)
