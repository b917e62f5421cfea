"""Bundled data sets: ``vgfm_bayes.datasets.load("simulation_gene")``."""

from .data.datasets import DATASETS, DatasetInfo, load

__all__ = ["DATASETS", "DatasetInfo", "load"]
