"""The ranker registry: every registered ranker scores every record, deterministically, and runs in `simulate` and
`screen`; a ranker registered here works end to end; --ranker_options and --help come from the registry; the
named rankers score exactly what their formulas before the registry scored."""

import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.naive_bayes import ComplementNB
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_sample_weight

import run_screening
from screening.active.loop import LoopArguments
from screening.active.rankers import (
    DEFAULT_RANKER,
    RANKERS,
    RankerArguments,
    build_ranker,
    hyperparameters,
    register_classifier,
    register_ranker,
    register_view,
)
from screening.active.review import ReviewArguments, run_review
from screening.active.simulate import SimulationArguments, run_simulation
from screening.active.stopping import StoppingArguments
from screening.errors import ScreeningInputError
from screening.pipelines.features import embed, load_encoder
from screening.text import TextOptions, prepare_texts

from .conftest import DEMO_TRAIN, demo_review
from .test_entry_points import assert_one_line_error, run

# from outside the package: a classifier and a ranker composed of it, one registration each, and a view class
register_classifier("ridge", RidgeClassifier, random_state=0)
register_ranker("test_tfidf_ridge", view="tfidf", classifier="ridge", description="TF-IDF + ridge (a test's own)")


@register_view("test_lengths")
class LengthsView(BaseEstimator):
    """The log word counts of title and abstract, x scale."""

    def __init__(self, scale=1.0):
        self.scale = scale

    def fit_transform(self, frame, encoder=None):
        counts = np.column_stack([frame[c].str.split().str.len().to_numpy(float) for c in ("title", "abstract")])
        return np.log1p(counts) * self.scale


NAMED = ("tfidf_features", "tfidf_svm", "tfidf_lr", "tfidf_nb", "features_lr", "finetune")
QUICK = {"finetune": "epochs=1"}  # the least training that still runs the Trainer


@pytest.fixture(scope="module")
def review():
    frame = demo_review(4, 36)
    return frame, frame.judgement.astype(int).to_numpy()


@pytest.fixture(scope="module")
def encoder_args(tiny_encoder_dir, tmp_path_factory):
    """The tiny random BERT as every ranker's encoder, fp32 so that the old formulas see the same vectors."""
    return dict(
        model_name_or_path=str(tiny_encoder_dir),
        max_seq_length=32,
        feature_cache_dir=str(tmp_path_factory.mktemp("embeddings")),
        embedding_precision="fp32",
    )


def ranker_args(name, encoder_args, **kwargs):
    return RankerArguments(ranker=name, ranker_options=QUICK.get(name), **encoder_args, **kwargs)


def labelled(labels, n=12):
    """`n` labelled rows: the first include and the first n - 1 excludes."""
    rows = np.sort(np.r_[np.flatnonzero(labels == 1)[:1], np.flatnonzero(labels == 0)[: n - 1]])
    return rows, labels[rows]


def test_registry_holds_the_named_rankers_and_the_default():
    assert set(NAMED) <= set(RANKERS) and DEFAULT_RANKER == RankerArguments.ranker == "tfidf_features"


@pytest.mark.parametrize("name", [*NAMED, "test_tfidf_ridge"])
def test_every_ranker_scores_every_record_deterministically(review, encoder_args, name):
    frame, labels = review
    rows, row_labels = labelled(labels)
    scores = build_ranker(frame, ranker_args(name, encoder_args), seed=3).fit_score(rows, row_labels)
    again = build_ranker(frame, ranker_args(name, encoder_args), seed=3).fit_score(rows, row_labels)
    assert scores.shape == (len(frame),) and np.isfinite(scores).all()
    np.testing.assert_array_equal(scores, again)


@pytest.mark.parametrize("name", [*NAMED, "test_tfidf_ridge"])
def test_every_ranker_runs_in_simulate_and_screen(review, encoder_args, name, tmp_path):
    frame, labels = review
    frame = frame.assign(id=frame["id"].astype(str))
    sim = SimulationArguments("demo.csv", str(tmp_path / "sim"), budget=12)
    results = run_simulation(
        frame, labels, ranker_args(name, encoder_args), LoopArguments(batch_size="5"), sim, StoppingArguments(),
        progress=False,
    )  # fmt: skip
    assert results["ranker"] == name and results["runs"][0]["figures"]["records_screened"] == 12
    order = pd.read_csv(tmp_path / "sim" / "screening_order.csv")
    assert np.isfinite(order.score[2:]).all()  # the ranker's scores after the two priors

    frame[["id", "title", "abstract"]].to_csv(tmp_path / "search.csv", index=False)
    rows, row_labels = labelled(labels)
    pd.DataFrame({"id": frame["id"][rows], "judgement": row_labels}).to_csv(tmp_path / "labels.csv", index=False)
    review_args = ReviewArguments(str(tmp_path / "search.csv"), str(tmp_path / "labels.csv"), str(tmp_path / "rev"))
    _, kind, size = run_review(review_args, ranker_args(name, encoder_args), LoopArguments("5"), StoppingArguments())
    batch = pd.read_csv(tmp_path / "rev" / "next_batch.csv")
    assert (kind, size) == ("ranked", 5) and np.isfinite(batch.score).all()


def test_a_ranker_registered_outside_runs_through_the_command_line(tmp_path, capsys):
    frame = pd.read_csv(DEMO_TRAIN, dtype=str, keep_default_na=False).head(300)
    frame = pd.concat([frame[frame.judgement == "1"].head(3), frame[frame.judgement == "0"].head(27)])
    frame.to_csv(tmp_path / "review.csv", index=False)
    argv = ["--data_file", tmp_path / "review.csv", "--output_dir", tmp_path / "out", "--ranker", "test_tfidf_ridge"]
    run_screening.simulate([*map(str, argv), "--ranker_options", "classifier.alpha=0.5", "--batch_size", "3"])
    order = pd.read_csv(tmp_path / "out" / "screening_order.csv")
    assert order.label.sum() == 3 and np.isfinite(order.score[2:]).all() and "Done." in capsys.readouterr().out


def test_a_view_registered_outside_replaces_a_rankers_view(review):
    frame, labels = review
    args = RankerArguments(ranker="tfidf_lr", view="test_lengths", ranker_options="view.scale=2")
    ranker = build_ranker(frame, args)
    assert ranker.features.shape == (len(frame), 2) and ranker.view.scale == 2
    assert ranker.classifier.solver == "liblinear"  # tfidf_lr's classifier options stay
    assert np.isfinite(ranker.fit_score(*labelled(labels))).all()


def test_ranker_options_set_the_hyperparameters_and_replace_parts():
    ranker = RankerArguments(ranker_options="classifier.C=0.5, view.features_weight=0.2").make()
    assert (ranker.classifier.C, ranker.view.features_weight, ranker.weighting.include_weight) == (0.5, 0.2, 9.8)
    swapped = RankerArguments(classifier="lr", ranker_options="classifier.C=2").make()
    assert isinstance(swapped.classifier, LogisticRegression) and swapped.classifier.C == 2
    assert RankerArguments(ranker_options={"classifier.dual": False}).make().classifier.dual is False  # from YAML
    assert swapped.weighting.include_weight == 9.8  # the ranker's other options stay
    assert type(RankerArguments(ranker="tfidf_lr", view="embedding").make().view).__name__ == "EmbeddingView"
    assert hyperparameters(RankerArguments(ranker="finetune").make()) == {
        "epochs": 2.0, "learning_rate": 5e-5, "batch_size": 16}  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"ranker_options": "classifier.D=1"}, "unknown key 'classifier.D'; valid keys: classifier.C,"),
        ({"ranker_options": "classifier.C=high"}, "classifier.C must be like 0.11; got 'high'"),
        ({"ranker_options": "classifier.C=-1"}, "The 'C' parameter of LinearSVC must be a float in the range"),
        ({"ranker_options": "C"}, "expected KEY=VALUE, got 'C'"),
        ({"ranker": "svm"}, "--ranker must be one of tfidf_features, tfidf_svm"),
        ({"view": "words"}, "--view must be one of tfidf, embedding, tfidf_embedding, test_lengths"),
        ({"ranker": "finetune", "classifier": "lr"}, "ranker finetune is not a view + classifier"),
    ],
)
def test_bad_ranker_arguments_are_one_line_errors(flags, message):
    with pytest.raises(ScreeningInputError, match=re.escape(message)):
        RankerArguments(**flags).check()


def test_bad_ranker_option_exits_2_with_one_line(tmp_path):
    (tmp_path / "r.csv").write_text("id,title,abstract,judgement\n1,a,b,1\n2,c,d,0\n")
    argv = ["simulate", "--data_file", "r.csv", "--output_dir", "out", "--ranker_options", "view.min_dff=1"]
    assert_one_line_error(run("run_screening.py", argv, tmp_path), "unknown key 'view.min_dff'", "view.min_df")


def test_help_lists_the_registry_with_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_screening.simulate(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    for name in (*NAMED, "test_tfidf_ridge", "test_lengths [scale=1.0]", "RidgeClassifier"):  # registered here too
        assert name in text
    defaults = ["classifier.C=0.11", "weighting.include_weight=9.8", "features_weight=0.3", "alpha=1.0", "epochs=2.0"]
    for default in (*defaults, "view.min_df=1, view.max_df=0.95", "--ranker_options", "(default: tfidf_features)"):
        assert default in text


# the named rankers as they were written before the registry (one class each), on the same tiny data


def old_balanced_weights(labels, include_weight=1.0):
    weights = compute_sample_weight("balanced", labels) * np.where(np.asarray(labels) == 1, include_weight, 1.0)
    return weights * (weights.size / weights.sum())


def old_scores(name, frame, encoder_dir, rows, labels):
    def tfidf(**kwargs):
        texts = prepare_texts(frame, ["title", "abstract"], " ", TextOptions())
        return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, **kwargs).fit_transform(texts)

    def embeddings():
        encoder, tokenizer = load_encoder(encoder_dir)
        texts = prepare_texts(frame, ["title", "abstract"], tokenizer.sep_token, TextOptions())
        return normalize(embed(encoder, tokenizer, texts, TextOptions(), "mean", 32, 64, bf16=False))

    if name in ("tfidf_lr", "tfidf_nb"):
        x = tfidf(min_df=2, max_df=1.0)
        model = ComplementNB(alpha=1.0) if name == "tfidf_nb" else LogisticRegression(C=1.0, max_iter=2000,
                                                                                       solver="liblinear")  # fmt: skip
        return model.fit(x[rows], labels, sample_weight=old_balanced_weights(labels)).predict_proba(x)[:, 1]
    if name == "features_lr":
        x = embeddings()
        model = LogisticRegression(C=1.0, max_iter=3000)
        return model.fit(x[rows], labels, sample_weight=old_balanced_weights(labels)).predict_proba(x)[:, 1]
    x = scipy.sparse.hstack([tfidf(min_df=1, max_df=0.95), scipy.sparse.csr_matrix(embeddings() * 0.3)]).tocsr()
    model = LinearSVC(C=0.11, random_state=0)
    return model.fit(x[rows], labels, sample_weight=old_balanced_weights(labels, 9.8)).decision_function(x)


@pytest.mark.parametrize("name", ["tfidf_features", "tfidf_lr", "tfidf_nb", "features_lr"])
def test_named_rankers_score_what_they_scored_before(review, encoder_args, name):
    frame, labels = review
    rows, row_labels = labelled(labels, 20)
    new = build_ranker(frame, ranker_args(name, encoder_args)).fit_score(rows, row_labels)
    old = old_scores(name, frame, encoder_args["model_name_or_path"], rows, row_labels)
    np.testing.assert_array_equal(new, old)


def test_tfidf_svm_is_tfidf_features_without_the_embedding(review, encoder_args):
    frame, labels = review
    rows, row_labels = labelled(labels, 20)
    without = RankerArguments(ranker="tfidf_features", ranker_options="view.features_weight=0", **encoder_args)
    np.testing.assert_allclose(
        build_ranker(frame, RankerArguments(ranker="tfidf_svm")).fit_score(rows, row_labels),
        build_ranker(frame, without).fit_score(rows, row_labels),
        atol=1e-6,
    )
