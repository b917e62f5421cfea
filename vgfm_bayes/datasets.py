"""Bundled data sets: ``vgfm_bayes.datasets.load("simulation_gene")``."""

from .data.datasets import DATASETS, DatasetInfo, is_bundled, load, reference

__all__ = ["DATASETS", "DatasetInfo", "is_bundled", "load", "reference"]
