"""Every file of a screening folder and its one writer (atomic, through screening.outputs).

screening_order.csv      seed, step, id, label, score, round      a simulation's reading order (every run)
simulation_results.json  per-run figures and stopping-rule outcomes, mean and sd over runs
next_batch.csv           id, title, abstract, score                 what to read next (a real review)
screened.csv             step, id, label, round                     what was read, in order (a real review)
state.json               the review's stream, batches and audits; written last
recall_curve.png         includes found against records read, beside the random line
summary.md               the figures or the verdicts, the recall curve and the stop certificate
"""

from pathlib import Path

import numpy as np

from .. import outputs

SCREENING_ORDER = "screening_order.csv"
SIMULATION_RESULTS = "simulation_results.json"
NEXT_BATCH = "next_batch.csv"
SCREENED = "screened.csv"
STATE = "state.json"
RECALL_CURVE = "recall_curve.png"
SUMMARY = "summary.md"


def write_screening_order(out, frame):
    outputs.write_csv(Path(out) / SCREENING_ORDER, frame[["seed", "step", "id", "label", "score", "round"]])


def write_simulation_results(out, results):
    outputs.write_json(Path(out) / SIMULATION_RESULTS, results)


def write_next_batch(out, frame):
    outputs.write_csv(Path(out) / NEXT_BATCH, frame[["id", "title", "abstract", "score"]])


def write_screened(out, frame):
    outputs.write_csv(Path(out) / SCREENED, frame[["step", "id", "label", "round"]])


def write_state(out, state):
    outputs.write_json(Path(out) / STATE, state)


def write_summary(out, markdown):
    outputs.write_text(Path(out) / SUMMARY, markdown)


def plot_recall_curve(out, streams, records, stops=None, title=""):
    """Includes found (as recall) against records read, one line per stream (0/1 labels in reading order), the
    random line, and the stopping points (`stops`: name -> records read) as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for n, stream in enumerate(streams):
        stream = np.asarray(stream, dtype=np.float64)
        total = max(stream.sum(), 1)
        x = np.arange(0, stream.size + 1)
        y = np.concatenate([[0], np.cumsum(stream) / total])
        ax.plot(
            x,
            y,
            drawstyle="steps-post",
            alpha=0.8 if len(streams) == 1 else 0.4,
            color="C0",
            label="prioritised" if n == 0 else None,
        )
    ax.plot([0, records], [0, 1], color="grey", linestyle="--", label="random reading")
    for n, (name, point) in enumerate((stops or {}).items()):
        ax.axvline(point, color=f"C{n + 1}", linestyle=":", label=f"{name}: {point}")
    ax.set(xlabel="records read", ylabel="share of includes found", xlim=(0, records), ylim=(0, 1.02), title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with outputs.atomic_path(Path(out) / RECALL_CURVE) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
