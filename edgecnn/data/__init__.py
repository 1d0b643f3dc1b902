"""Datasets, transforms and augmentations (issue: training)."""
