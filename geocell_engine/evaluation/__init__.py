"""Evaluation: predictions, scoring, reports, plots and baselines."""
