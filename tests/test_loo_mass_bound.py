"""benchmarks/loo_mass_bound.py: the narrowest leave-one-out mass intervals that can cover."""

import numpy as np
import pytest

from tests.tiny import load_script


@pytest.fixture(scope="module")
def bound():
    return load_script("loo_mass_bound")


def test_log_linear_centre_is_exact_for_constant_growth(bound):
    times = np.array([0.0, 1.0, 3.0])
    masses = np.exp(0.4 * times)  # constant growth: the held-out mass lies on the log line
    assert bound.log_linear(times, masses, 1) == pytest.approx(masses[1], rel=1e-12)
    zigzag = np.array([1.0, 0.4, 1.0])
    assert bound.log_linear(times[:3], zigzag, 1) == pytest.approx(1.0)


def test_oracle_gives_up_the_hardest_tasks(bound):
    needed = [0.1, 0.2, 0.3, 5.0, 9.0]
    # cover 3: widths 0.1, 0.2, 0.3 and 0 on the two hardest; median 0.1
    assert bound.oracle_median(needed, cover=3) == pytest.approx(0.1)
    assert bound.oracle_median(needed, cover=5) == pytest.approx(0.3)


def test_one_width_per_data_set_pays_for_its_worst_covered_fold(bound):
    needed = {"smooth": [0.05, 0.05], "jumpy": [0.1, 1.0]}
    # covering 3 of 4: "jumpy" must take 0.1 (covers one fold), "smooth" 0.05 -> widths
    # 0.05, 0.05, 0.1, 0.1, median 0.075; covering all 4 costs 1.0 on both jumpy folds
    assert bound.per_dataset_median(needed, cover=3) == pytest.approx(0.075)
    assert bound.per_dataset_median(needed, cover=4) == pytest.approx(0.525)
    # never below the per-task oracle
    flat = [v for vs in needed.values() for v in vs]
    assert bound.per_dataset_median(needed, cover=3) >= bound.oracle_median(flat, cover=3)
