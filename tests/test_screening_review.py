"""A real review's round trip: readers (RIS, Excel, TSV), stable ids, the labels file (never written), resume,
a rerun losing nothing, and every bad-labels case as a one-line error naming the file and rows."""

import json

import numpy as np
import pandas as pd
import pytest
import rispy

from screening.active.loop import LoopArguments
from screening.active.rankers import RankerArguments
from screening.active.review import ReviewArguments, includes_missed, load_records, read_labels, run_review
from screening.active.stopping import StoppingArguments
from screening.data import read_table
from screening.errors import ScreeningInputError

from .conftest import DEMO_TRAIN
from .test_entry_points import assert_one_line_error, run


@pytest.fixture(scope="module")
def demo():
    frame = pd.read_csv(DEMO_TRAIN, dtype=str, keep_default_na=False)
    frame = pd.concat([frame[frame.judgement == "1"].head(6), frame[frame.judgement == "0"].head(54)])
    return frame.sample(frac=1, random_state=1).reset_index(drop=True)


def write_ris(path, frame, with_ids=False):
    entries = [{"type_of_reference": "JOUR", "title": t, "abstract": a, "authors": ["Doe, J", "Roe, R"], "year": "2020"}
               for t, a in zip(frame.title, frame.abstract)]  # fmt: skip
    if with_ids:
        for entry, i in zip(entries, frame["id"]):
            entry["id"] = i
    path.write_text(rispy.dumps(entries), encoding="utf-8")
    return path


def test_ris_reader_and_stable_ids(demo, tmp_path):
    table = read_table(write_ris(tmp_path / "s.ris", demo), "--records_file")
    assert table.title.tolist() == demo.title.tolist() and table.abstract.tolist() == demo.abstract.tolist()
    assert table.authors[0] == "Doe, J; Roe, R" and table.year[0] == "2020"
    records = load_records(tmp_path / "s.ris")
    assert records.id.str.match(r"^r[0-9a-f]{12}$").all() and records.id.is_unique
    again = load_records(write_ris(tmp_path / "t.ris", demo.iloc[::-1]))  # order changed, same ids per record
    assert dict(zip(records.title, records.id)) == dict(zip(again.title, again.id))
    with_ids = load_records(write_ris(tmp_path / "u.ris", demo, with_ids=True))
    assert with_ids.id.tolist() == demo.id.tolist()


def test_duplicate_records_get_numbered_ids(demo, tmp_path):
    records = load_records(write_ris(tmp_path / "s.ris", pd.concat([demo.head(2), demo.head(1)])))
    assert records.id[2] == records.id[0] + "-2"


def test_excel_and_tsv_readers(demo, tmp_path):
    demo.assign(id=demo["id"].astype(int)).to_excel(tmp_path / "s.xlsx", index=False)
    table = read_table(tmp_path / "s.xlsx")
    assert table.id.tolist() == demo.id.tolist()  # whole numbers stay '12', not '12.0'
    assert table.abstract.tolist() == demo.abstract.tolist()
    demo.to_csv(tmp_path / "s.tsv", sep="\t", index=False)
    assert read_table(tmp_path / "s.tsv").title.tolist() == demo.title.tolist()
    (tmp_path / "bad.xlsx").write_text("not a workbook")
    with pytest.raises(ScreeningInputError, match="bad.xlsx could not be read as an Excel workbook"):
        read_table(tmp_path / "bad.xlsx")


@pytest.fixture(scope="module")
def ranker(tiny_encoder_dir, tmp_path_factory):
    """The default ranker (tfidf_features) on the tiny random BERT, embeddings cached for the module."""
    cache = tmp_path_factory.mktemp("embeddings")
    return RankerArguments(model_name_or_path=str(tiny_encoder_dir), max_seq_length=32, feature_cache_dir=str(cache))


def step(tmp_path, ranker, **kwargs):
    args = ReviewArguments(str(tmp_path / "s.ris"), str(tmp_path / "labels.csv"), str(tmp_path / "review"), **kwargs)
    return run_review(args, ranker, LoopArguments(batch_size="10"), StoppingArguments())


def label_batch(tmp_path, demo, extra=()):
    """The reviewer: label next_batch.csv from the known judgements, appending to labels.csv."""
    truth = dict(zip(demo.title, demo.judgement))
    batch = pd.read_csv(tmp_path / "review" / "next_batch.csv", dtype=str, keep_default_na=False)
    rows = pd.DataFrame({"id": batch.id, "judgement": batch.title.map(truth)})
    path = tmp_path / "labels.csv"
    old = pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else None
    pd.concat([old, rows, pd.DataFrame(list(extra), columns=["id", "judgement"])]).to_csv(path, index=False)


def test_round_trip_resume_and_rerun(demo, tmp_path, ranker):
    write_ris(tmp_path / "s.ris", demo)
    verdict, kind, size = step(tmp_path, ranker)
    assert (kind, size, verdict["records_read"]) == ("random", 10, 0)
    includes = load_records(tmp_path / "s.ris").merge(demo, on=["title", "abstract"])
    prior = includes[includes.judgement == "1"].id_x.iloc[0]
    label_batch(tmp_path, demo, extra=[(prior, "1")])  # a known include as a prior
    labels_before = (tmp_path / "labels.csv").read_bytes()
    verdict, kind, size = step(tmp_path, ranker)
    assert kind == "ranked" and verdict["records_read"] == 11 and verdict["includes_found"] >= 1
    state = json.loads((tmp_path / "review" / "state.json").read_text())
    batch = pd.read_csv(tmp_path / "review" / "next_batch.csv", dtype=str)
    # a rerun with the same labels (e.g. after a killed run) proposes the same batch and keeps the same stream
    step(tmp_path, ranker)
    assert json.loads((tmp_path / "review" / "state.json").read_text())["stream"] == state["stream"]
    assert pd.read_csv(tmp_path / "review" / "next_batch.csv", dtype=str).equals(batch)
    assert (tmp_path / "labels.csv").read_bytes() == labels_before  # never written
    label_batch(tmp_path, demo)
    verdict, kind, size = step(tmp_path, ranker)
    assert verdict["records_read"] == 21 and state["stream"] == json.loads(
        (tmp_path / "review" / "state.json").read_text())["stream"][:11]  # fmt: skip
    screened = pd.read_csv(tmp_path / "review" / "screened.csv")
    assert screened.step.tolist() == list(range(1, 22)) and set(verdict["rules"]) >= {"hypergeometric", "read_share"}


def test_screen_embeds_the_search_once_into_the_output_dir(demo, tmp_path, tiny_encoder_dir):
    write_ris(tmp_path / "s.ris", demo)
    ranker = RankerArguments(model_name_or_path=str(tiny_encoder_dir), max_seq_length=32)  # no --feature_cache_dir
    assert step(tmp_path, ranker)[1] == "random"  # no labels yet: nothing embedded
    assert not (tmp_path / "review" / "embeddings").exists()
    includes = load_records(tmp_path / "s.ris").merge(demo, on=["title", "abstract"])
    label_batch(tmp_path, demo, extra=[(includes[includes.judgement == "1"].id_x.iloc[0], "1")])
    assert step(tmp_path, ranker)[1] == "ranked"
    cached = list((tmp_path / "review" / "embeddings").glob("*.npy"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    label_batch(tmp_path, demo)
    step(tmp_path, ranker)  # read from the cache, not embedded again
    assert [p.stat().st_mtime_ns for p in (tmp_path / "review" / "embeddings").glob("*.npy")] == [mtime]


def test_audit_round_trip(demo, tmp_path, ranker):
    write_ris(tmp_path / "s.ris", demo)
    step(tmp_path, ranker)
    label_batch(tmp_path, demo)
    verdict, kind, size = step(tmp_path, ranker, audit=True)
    assert kind == "audit" and size > 0
    label_batch(tmp_path, demo)
    verdict, kind, size = step(tmp_path, ranker)
    assert verdict["rules"]["audit"]["status"] in ("certified", "failed")
    assert "## Stop certificate" in (tmp_path / "review" / "summary.md").read_text()


@pytest.mark.parametrize(
    "rows, fragment",
    [
        ("{a},1\n{b},yes\n{c},2\n", "judgement must be 0, 1 or blank; rows 2, 3 (1-based, header not counted)"),
        ("{a},1\nnope,0\n", "ids not in the records: nope in rows 2"),
        ("{a},1\n{b},0\n{a},0\n", "is labelled both 0 and 1 in rows 1, 3"),
    ],
)
def test_bad_labels_are_one_line_errors(demo, tmp_path, rows, fragment):
    records = load_records(write_ris(tmp_path / "s.ris", demo))
    a, b, c = records.id[:3]
    (tmp_path / "labels.csv").write_text("id,judgement\n" + rows.format(a=a, b=b, c=c))
    with pytest.raises(ScreeningInputError, match="labels.csv") as err:
        read_labels(tmp_path / "labels.csv", set(records.id))
    assert fragment in str(err.value)
    result = run("run_screening.py", ["screen", "--records_file", str(tmp_path / "s.ris"), "--labels_file",
                                      str(tmp_path / "labels.csv"), "--output_dir", "out"], tmp_path)  # fmt: skip
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()


def test_same_label_twice_and_blank_are_fine(demo, tmp_path):
    records = load_records(write_ris(tmp_path / "s.ris", demo))
    a, b = records.id[:2]
    (tmp_path / "labels.csv").write_text(f"id,judgement\n{a},1\n{b},\n{a},1\n")
    assert read_labels(tmp_path / "labels.csv", set(records.id)) == {a: 1}


def test_cli_help_and_simulate(demo, tmp_path):
    for command in ("screen", "simulate"):
        result = run("run_screening.py", [command, "--help"], tmp_path)
        assert result.returncode == 0 and "--target_recall" in result.stdout and "--batch_size" in result.stdout
    demo.to_csv(tmp_path / "review.csv", index=False)
    result = run("run_screening.py", ["simulate", "--data_file", "review.csv", "--output_dir", "sim", "--runs", "2"],
                 tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "wss95=" in result.stdout and (tmp_path / "sim" / "summary.md").is_file()
    assert_one_line_error(run("run_screening.py", ["rank"], tmp_path), "first argument must be one of: screen")


def test_screen_and_simulate_share_the_loop(demo, tmp_path):
    """Driven step by step with a labels file filled from the known judgements, `screen` reads the same batches as
    `simulate` from the same priors, and every rule gives the same verdict at every retrain."""
    from screening.active.simulate import SimulationArguments, simulate_run
    from screening.active.stopping import build_rules

    frame = demo.assign(id=[f"rec{i}" for i in range(len(demo))])
    frame.to_csv(tmp_path / "records.csv", index=False)
    records = load_records(tmp_path / "records.csv")
    labels = frame.judgement.astype(int).to_numpy()
    truth = dict(zip(frame.id, frame.judgement))
    priors = [frame.id[labels == 1].iloc[0], frame.id[labels == 0].iloc[0]]
    ranker, loop, stop = RankerArguments(ranker="tfidf_lr"), LoopArguments(batch_size="2"), StoppingArguments()
    sim = simulate_run(records, labels, ranker, loop, SimulationArguments("d", "o", prior_ids=",".join(priors)),
                       stop, 0)  # fmt: skip
    reading = sim["reading"]
    rules = build_rules(stop, review=True)
    pd.DataFrame({"id": priors, "judgement": [truth[i] for i in priors]}).to_csv(tmp_path / "labels.csv", index=False)
    args = ReviewArguments(str(tmp_path / "records.csv"), str(tmp_path / "labels.csv"), str(tmp_path / "review"))
    compared = 0
    while True:
        verdict, kind, size = run_review(args, ranker, loop, stop)
        n = verdict["records_read"]
        if n >= sim["order"].size:
            break
        assert kind == "ranked"
        state = reading.state(n)  # the simulated loop retrained here on the same labels
        for name, rule in rules.items():
            decision = rule.decide(state)
            assert verdict["rules"][name]["stop"] == decision.stop, (name, n)
            assert verdict["rules"][name]["recall_estimate"] == pytest.approx(decision.recall_estimate), (name, n)
        compared += 1
        batch = pd.read_csv(tmp_path / "review" / "next_batch.csv", dtype=str)
        old = pd.read_csv(tmp_path / "labels.csv", dtype=str)
        rows = pd.DataFrame({"id": batch.id, "judgement": batch.id.map(truth)})
        pd.concat([old, rows]).to_csv(tmp_path / "labels.csv", index=False)
    stream = json.loads((tmp_path / "review" / "state.json").read_text())["stream"]
    assert stream == records.id.to_numpy()[sim["order"]].tolist()  # the same batches in the same order
    assert compared == len([p for p, _ in reading.retrains if p < sim["order"].size]) > 3
    assert verdict["recommended"] in verdict["rules"]
    assert {"recall_estimate", "interval", "assumption", "guarantee"} <= set(verdict["rules"]["quant"])


def test_recommended_steady_rule_says_how_long_its_verdict_has_held():
    """The steady counting process, recommended at 0.95: 10 records after its counting process first says stop,
    the team is told the streak so far and the records it needs (ceil(0.05 x 2000) = 100)."""
    from screening.active import stopping
    from screening.active.review import recommendation_lines, verdicts

    labels = np.r_[np.ones(100, int), np.zeros(1900, int)]
    stream = stopping.evaluate.SimulatedReading(labels, np.arange(2000))
    first = stopping.RULES["counting_process"](0.95, 0.95, rate="exponential").first_stop(stream).position
    verdict = verdicts(labels[: first + 10], 2000, stopping.StoppingArguments(), None)
    assert verdict["recommended"] == "counting_process_steady"  # screening/active/rule_reliability.json at 0.95
    line = recommendation_lines(verdict)[0]
    held = "go on (its counting process has said stop after each of the last 11 records read, of the 100 it needs)"
    assert held in line
    done = verdicts(labels[: first + 99], 2000, stopping.StoppingArguments(), None)
    assert recommendation_lines(done)[0].startswith("Recommended (counting_process_steady, an estimate, not a ")
    assert "): STOP; recall estimate" in recommendation_lines(done)[0]
    early = recommendation_lines(verdicts(labels[:9], 2000, stopping.StoppingArguments(), None))[0]
    assert "go on; no recall estimate yet (waits for 10 records read);" in early  # 9 includes in 9 records


def test_includes_missed_says_include_for_one_and_rounds():
    assert [includes_missed(x) for x in (0, 0.8, 1.4, 2.6)] == [
        "at most 0 includes missed",
        "at most 1 include missed",
        "at most 1 include missed",
        "at most 3 includes missed",
    ]


def test_demo_labeller_appends_the_known_judgements(tmp_path):
    truth = read_table(DEMO_TRAIN)
    include = truth[truth.judgement.astype(str) == "1"].iloc[:1]
    excludes = truth[truth.judgement.astype(str) == "0"].iloc[:2]
    batch = pd.concat([include, excludes]).assign(id=["a", "b", "c"])[["id", "title", "abstract"]]
    batch.to_csv(tmp_path / "next_batch.csv", index=False)
    result = run("scripts/label_demo_batch.py", ["next_batch.csv", "labels.csv"], tmp_path)
    assert result.stdout.strip() == "labelled 3 records (1 include) into labels.csv"
    assert (tmp_path / "labels.csv").read_text() == "id,judgement\na,1\nb,0\nc,0\n"
