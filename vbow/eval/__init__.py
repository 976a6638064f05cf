"""Evaluation: datasets, protocols and metrics."""
