"""Prioritised screening of a fresh search: rank what to read next from a few labels, retrain as labels come,
and say when reading can stop with a stated recall and confidence (simulated on labelled reviews, or run on a
real search with a labels file the reviewer edits)."""
