"""The browser app's logic without a browser: resolved labels and conflicts, Cohen's kappa against the 2x2 table by
hand, duplicates, undo, the labels file's order, keyword search, highlighting and the serving guard."""

import math

import pandas as pd
import pytest

from screening.active import decisions as dec
from screening.app.folder import ReviewFolder, inspect_upload
from screening.app.ui import AppArguments, highlight, read_auth_file
from screening.errors import ScreeningInputError


def made(judgements):
    return {i: {"judgement": j, "note": "", "time": float(n)} for n, (i, j) in enumerate(judgements.items())}


def test_resolve_single_dual_and_conflicts():
    alice = made({"a": "include", "b": "exclude", "c": "maybe", "d": "include"})
    bob = made({"a": "include", "b": "include", "d": "include"})
    assert dec.resolve({"alice": alice}, {}) == ({"a": 1, "b": 0, "d": 1}, {})
    labels, conflicts = dec.resolve({"alice": alice, "bob": bob}, {}, reviewers_needed=2)
    assert labels == {"a": 1, "d": 1} and conflicts == {"b": {"alice": 0, "bob": 1}}
    labels, conflicts = dec.resolve({"alice": alice, "bob": bob}, {"b": {"label": 0, "by": "carol"}}, 2)
    assert labels == {"b": 0, "a": 1, "d": 1} and conflicts == {}
    # one reviewer's include is not a label in dual screening; a maybe is never one
    assert dec.resolve({"alice": alice}, {}, 2)[0] == {}


def test_kappa_matches_the_table_by_hand():
    first = made({str(i): j for i, j in enumerate("IIIIEEEEEEIE")})
    second = made({str(i): j for i, j in enumerate("IIIEEEEEEIEE")})
    for d in (first, second):
        for v in d.values():
            v["judgement"] = "include" if v["judgement"] == "I" else "exclude"
    stats = dec.agreement(first, second)
    # rows first reviewer (exclude, include), columns second: EE=6, EI=1, IE=2, II=3 of n=12
    assert stats["table"] == [[6, 1], [2, 3]]
    n, po = 12, (6 + 3) / 12
    pe = ((6 + 1) / n) * ((6 + 2) / n) + ((2 + 3) / n) * ((1 + 3) / n)
    assert stats["agreement"] == pytest.approx(po)
    assert stats["kappa"] == pytest.approx((po - pe) / (1 - pe))


def test_kappa_undefined_with_one_class():
    same = made({"a": "exclude", "b": "exclude"})
    stats = dec.agreement(same, same)
    assert stats["agreement"] == 1.0 and math.isnan(stats["kappa"])


def test_duplicates_exact_near_exact_and_not():
    abstract = "copper chelation with penicillamine in forty patients over ten years of follow up " * 2
    records = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e"],
            "title": ["Zinc in Wilson disease", "ZINC in Wilson-disease.", "Wilson disease", "Wilson disease",
                      "Zinc in Wilson disease trial"],
            "abstract": [abstract, abstract, "one study of liver", "another study of brain", abstract],
        }
    )  # fmt: skip
    found = dec.find_duplicates(records, threshold=0.9)
    assert found.to_dict("list")["id"] == ["b", "e"]
    assert found.duplicate_of.tolist() == ["a", "a"] and found.kind.tolist() == ["exact", "near-exact"]
    assert 0.9 <= found.similarity[1] < 1  # same title, different abstracts ("c", "d"): not duplicates


def test_undo_stops_at_what_the_ranker_has_read():
    decisions = made({"a": "include", "b": "exclude", "c": "maybe"})
    assert dec.undoable(decisions, []) == "c"
    assert dec.undoable(decisions, ["c", "b"]) == "a"
    assert dec.undoable(decisions, ["a", "b", "c"]) is None


def test_labels_keep_the_file_order_then_settling_order():
    frame = dec.labels_in_order({"a": 1, "b": 0, "c": 0, "d": 1}, ["b", "x", "a"], {"c": 5.0, "d": 2.0})
    assert frame.id.tolist() == ["b", "a", "d", "c"] and frame.judgement.tolist() == [0, 1, 1, 0]


def test_keyword_search_needs_every_word_title_hits_first():
    records = pd.DataFrame(
        {"id": ["a", "b", "c"], "title": ["Liver copper", "Zinc and copper", "Brain"],
         "abstract": ["zinc acetate", "trial", "copper zinc"]}
    )  # fmt: skip
    assert dec.keyword_search(records, "zinc COPPER").id.tolist() == ["b", "a", "c"]
    assert dec.keyword_search(records, "  ").empty


def test_highlight_escapes_and_marks_terms():
    out = highlight("Zinc <b> vs penicillamine in rats", "zinc, penicillamine", "rat")
    assert '<mark class="include">Zinc</mark> &lt;b&gt;' in out
    assert '<mark class="include">penicillamine</mark>' in out and '<mark class="exclude">rat</mark>s' in out


def test_serving_beyond_localhost_needs_logins(tmp_path):
    with pytest.raises(ScreeningInputError, match="--host 0.0.0.0 serves the app beyond this machine"):
        AppArguments(output_dir="r", host="0.0.0.0").check()
    AppArguments(output_dir="r", host="localhost").check()
    (tmp_path / "auth").write_text("alice:secret\n\nbob\n")
    with pytest.raises(ScreeningInputError, match="line 3 is not user:password"):
        read_auth_file(tmp_path / "auth")
    (tmp_path / "auth").write_text("# team\nalice:se:cret\n")
    assert read_auth_file(tmp_path / "auth") == [("alice", "se:cret")]


def test_folder_decide_maybe_undo_and_labels_file(tmp_path):
    from screening.active.loop import LoopArguments
    from screening.active.rankers import RankerArguments
    from screening.active.stopping import StoppingArguments

    rows = [{"id": f"p{i}", "title": f"paper {i} on topic {i % 3}", "abstract": f"words {i} more {i * 7}"}
            for i in range(12)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    folder = ReviewFolder(tmp_path / "r", RankerArguments(ranker="tfidf_lr"), LoopArguments(batch_size="3"),
                          StoppingArguments())  # fmt: skip
    folder.start(inspect_upload(tmp_path / "s.csv"), [], {"p0": 1, "p1": 0}, "ann")
    batch = folder.batch()
    assert len(batch) == 3 and not set(batch) & {"p0", "p1"}
    folder.decide("ann", batch[0], "include")
    folder.decide("ann", batch[1], "maybe", "ask Bob")
    labels = pd.read_csv(tmp_path / "r/labels.csv", dtype=str)
    assert labels.id.tolist() == ["p0", "p1", batch[0]]  # the maybe never reaches the labels file
    assert folder.undo("ann") == batch[1] and folder.undo("ann") == batch[0]
    assert pd.read_csv(tmp_path / "r/labels.csv", dtype=str).id.tolist() == ["p0", "p1"]
    for i in batch:
        folder.decide("ann", i, "exclude")
    assert folder.next_record("ann")[0] not in batch and len(folder.state()["batches"]) == 2
    assert folder.undo("ann") is None  # the ranker has read them


def test_app_refuses_to_serve_beyond_localhost_without_logins(tmp_path):
    import subprocess
    import sys

    from .conftest import REPO

    done = subprocess.run(
        [sys.executable, "run_screening.py", "app", "--output_dir", str(tmp_path / "r"), "--host", "0.0.0.0"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: --host 0.0.0.0 serves the app beyond this machine: give --auth_file (user:password lines)"
    ]
    assert not (tmp_path / "r").exists()


def test_folder_goes_on_from_a_review_screen_made(tmp_path):
    from screening.active.loop import LoopArguments
    from screening.active.rankers import RankerArguments
    from screening.active.review import ReviewArguments, run_review
    from screening.active.stopping import StoppingArguments

    rows = [{"id": f"p{i}", "title": f"paper {i} on topic {i % 3}", "abstract": f"words {i} more {i * 7}"}
            for i in range(12)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "r"
    flags = RankerArguments(ranker="tfidf_lr"), LoopArguments(batch_size="3"), StoppingArguments()
    args = ReviewArguments(str(tmp_path / "s.csv"), str(out / "labels.csv"), str(out))
    run_review(args, *flags)
    batch = pd.read_csv(out / "next_batch.csv", dtype=str).id.tolist()
    pd.DataFrame({"id": batch, "judgement": [1, 0, 0]}).to_csv(out / "labels.csv", index=False)
    run_review(args, *flags)  # the command read the batch's labels and proposed the next
    folder = ReviewFolder(out, *flags)
    folder.adopt(tmp_path / "s.csv")
    assert folder.resolved()[0] == {batch[0]: 1, batch[1]: 0, batch[2]: 0}
    record_id, _ = folder.next_record("ann")
    assert record_id in folder.batch() and len(folder.state()["batches"]) == 2  # no batch proposed twice
    assert pd.read_csv(out / "labels.csv", dtype=str).id.tolist() == batch


def test_folder_starts_without_priors_and_undoes_the_only_label(tmp_path):
    from screening.active.loop import LoopArguments
    from screening.active.rankers import RankerArguments
    from screening.active.stopping import StoppingArguments

    pd.DataFrame({"title": [f"t {i}" for i in range(6)], "abstract": [f"a {i}" for i in range(6)]}).to_csv(
        tmp_path / "s.csv", index=False
    )
    folder = ReviewFolder(tmp_path / "r", RankerArguments(ranker="tfidf_lr"), LoopArguments(batch_size="2"),
                          StoppingArguments())  # fmt: skip
    folder.start(inspect_upload(tmp_path / "s.csv"), [], {}, "ann")
    assert folder.state()["batches"][0]["kind"] == "random" and not (tmp_path / "r/labels.csv").exists()
    first = folder.next_record("ann")[0]
    folder.decide("ann", first, "exclude")
    assert (tmp_path / "r/labels.csv").read_text() == f"id,judgement\n{first},0\n"
    folder.undo("ann")
    assert not (tmp_path / "r/labels.csv").exists() and folder.next_record("ann")[0] == first


@pytest.mark.parametrize("extra", [{}, {"recall_estimate": 0.93, "interval": [0.8, 1.0]}])
def test_progress_and_stop_panel_read_either_verdict(extra):
    from screening.app.ui import progress_markdown, stop_html

    verdict = {
        "records": 400, "records_read": 282, "includes_found": 18, "target_recall": 0.9, "confidence": 0.95,
        "frontier": {"recall_bound": 0.9, "target_confidence": 0.951, "expected_missed_high": 2.0},
        "rules": {"hypergeometric": {"stop": True, **extra},
                  "consecutive_excludes": {"stop": True, "guarantee": "none"}},
    }  # fmt: skip
    assert "| `hypergeometric` | STOP |" in progress_markdown(verdict)  # code: no autolink of rule@0.95
    assert ("[0.800, 1.000]" in progress_markdown(verdict)) == bool(extra)
    assert "You may stop.</b> The hypergeometric rule certifies recall >= 0.9" in stop_html(verdict)
    verdict["rules"]["hypergeometric"]["stop"] = False
    assert "A rule says stop:</b> consecutive_excludes (no guarantee)." in stop_html(verdict)
    assert "Recommended rule: **`audit`**" in progress_markdown({**verdict, "recommended": "audit"})
    verdict["rules"]["counting_process@0.95"] = {"stop": True, "guarantee": "estimate", "recall_estimate": 0.97}
    assert "certif" not in stop_html(verdict).split("No certified")[0]  # an estimate never reads as a guarantee
    assert "consecutive_excludes (no guarantee), counting_process@0.95 (an estimate)" in stop_html(verdict)
    measured = {"reliability": 0.958, "runs": 190}
    panel = stop_html({**verdict, "recommended": "counting_process@0.95", "recommended_measured": measured})
    assert 'class="stop-panel estimate"' in panel and "estimates recall 0.970" in panel
    assert "in 96% of 190 simulated runs. No certified" in panel
    measured.update(reliability_interval=[0.9188, 0.9817], measured_on="19 reviews x 10 seeds")
    panel = stop_html({**verdict, "recommended": "counting_process@0.95", "recommended_measured": measured})
    assert "in 96% of 190 simulated runs (95% CI 92-98%; 19 reviews x 10 seeds). No certified" in panel


def test_progress_says_how_long_the_steady_rules_stop_has_held():
    from screening.app.ui import progress_markdown

    verdict = {
        "records": 2000, "records_read": 150, "includes_found": 100, "target_recall": 0.95, "confidence": 0.95,
        "frontier": {"recall_bound": 0.9, "target_confidence": 0.9, "expected_missed_high": 5.0},
        "recommended": "counting_process_steady",
        "rules": {"counting_process_steady": {"stop": False, "stop_streak": 11, "streak_needed": 40}},
    }  # fmt: skip
    held = "its counting process has said stop after each of the last 11 records read, of the 40 it needs"
    assert f"Recommended rule: **`counting_process_steady`** ({held})." in progress_markdown(verdict)
    verdict["rules"]["counting_process"] = {"stop": False, "status": "waits for 10 records read"}
    assert "| `counting_process` | go on | waits for 10 records read |  |" in progress_markdown(verdict)
    verdict["rules"]["counting_process_steady"].update(stop=True, stop_streak=40)
    assert progress_markdown(verdict).endswith("Recommended rule: **`counting_process_steady`**.")
