#!/usr/bin/env python
"""Prioritised screening of a fresh search: read the likely includes first, retrain as labels come, and stop with a
stated recall and confidence.

    python run_screening.py screen --records_file search.ris --labels_file labels.csv --output_dir review
    python run_screening.py simulate --data_file review.csv --output_dir sim --runs 10
    python run_screening.py app --records_file search.ris --output_dir review

`screen` reads the search and your labels file (id,judgement; you edit it, the tool never writes it), writes the
next batch to read (next_batch.csv), the verdict of every stopping rule (summary.md, state.json) and goes on
from there at every rerun. `simulate` replays a labelled review from 1 include + 1 exclude. All flags:
`python run_screening.py screen --help`, `python run_screening.py simulate --help`. `app` serves the same review in a
browser on 127.0.0.1 (`python run_screening.py app --help`; needs `pip install .[app]`).
"""

import logging
import sys

import screening.cli
from screening.active.loop import LoopArguments
from screening.active.rankers import RankerArguments
from screening.active.review import ReviewArguments, recommendation_lines, run_review
from screening.active.simulate import SimulationArguments, run_simulation
from screening.active.stopping import StoppingArguments
from screening.data import parse_labels
from screening.errors import ScreeningInputError, exit_on_input_error

COMMANDS = ("screen", "simulate", "app")


def simulate(argv):
    sim_args, ranker_args, loop_args, stop_args = screening.cli.parse_args(
        (SimulationArguments, RankerArguments, LoopArguments, StoppingArguments), argv
    )
    for args in (sim_args, ranker_args, loop_args, stop_args):
        args.check()
    from screening.active.review import load_records

    frame = load_records(sim_args.data_file, sim_args.id_column, "--data_file")
    from screening.data import read_table

    labels = parse_labels(
        read_table(sim_args.data_file, "--data_file"), sim_args.label_column, sim_args.data_file, "--data_file"
    )
    results = run_simulation(frame, labels, ranker_args, loop_args, sim_args, stop_args, " ".join(sys.argv))
    agg = results["aggregate"]
    figures = {name: round(agg[name]["mean"], 4) for name in ("n95", "wss95", "recall_at_10", "atd") if name in agg}
    screening.cli.print_summary(figures, {}, sim_args.output_dir)


def screen(argv):
    review_args, ranker_args, loop_args, stop_args = screening.cli.parse_args(
        (ReviewArguments, RankerArguments, LoopArguments, StoppingArguments), argv
    )
    for args in (ranker_args, loop_args, stop_args):
        args.check()
    verdict, kind, size = run_review(review_args, ranker_args, loop_args, stop_args)
    front = verdict["frontier"]
    print(f"Read {verdict['records_read']} of {verdict['records']}; includes found: {verdict['includes_found']}")
    print(
        f"Recall >= {front['recall_bound']:.3f} at confidence {verdict['confidence']:g}; target "
        f"{verdict['target_recall']:g} holds at confidence {front['target_confidence']:.3f}"
    )
    print(f"Missed includes: at most {front['expected_missed_high']:.0f} at confidence {verdict['confidence']:g}")
    for rule, v in verdict["rules"].items():
        print(f"  {rule:28s} {'STOP' if v['stop'] else 'go on':6s} {v['guarantee']}")
    for line in recommendation_lines(verdict):
        print(line)
    print(f"Next batch ({kind}): {size} records in {review_args.output_dir}/next_batch.csv")


def app(argv):
    from screening.app.ui import AppArguments, launch

    app_args, ranker_args, loop_args, stop_args = screening.cli.parse_args(
        (AppArguments, RankerArguments, LoopArguments, StoppingArguments), argv
    )
    for args in (app_args, ranker_args, loop_args, stop_args):
        args.check()
    launch(app_args, ranker_args, loop_args, stop_args)


def main():
    argv = sys.argv[1:]
    if not argv or argv[0] not in COMMANDS:
        if argv and argv[0] in ("-h", "--help"):
            print(__doc__)
            return
        raise ScreeningInputError(f"the first argument must be one of: {', '.join(COMMANDS)} (see --help)")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s - %(name)s - %(message)s")
    {"screen": screen, "simulate": simulate, "app": app}[argv[0]](argv[1:])


if __name__ == "__main__":
    exit_on_input_error(main)
