"""Time labels as scanpy users have them (data/timelabels.py): numbers, "day2", ordered
categoricals, a time_map, and the errors for labels that cannot be read."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from vgfm_bayes import DataError
from vgfm_bayes.data import label_number, read_time_map, time_values


@pytest.mark.parametrize(
    "label, number",
    [
        ("day2", 2.0),
        ("D3.5", 3.5),
        ("E7.5", 7.5),
        ("day 10", 10.0),
        ("Day_1.5", 1.5),
        ("10h", 10.0),
        ("2", 2.0),
        (" 4 ", 4.0),
        ("1e3", 1000.0),
        ("-1", -1.0),
        ("t=-1", -1.0),
        ("day-2", 2.0),  # a separator, not a sign
        (3, 3.0),
        (np.float32(0.5), 0.5),
        ("early", None),
        ("d1_2", None),  # two numbers
        ("1,5", None),
        ("nan", None),
        (float("inf"), None),
        (True, None),
    ],
)
def test_label_number(label, number):
    assert label_number(label) == number


def test_numeric_column_is_used_as_it_is(caplog):
    with caplog.at_level(logging.INFO, logger="vgfm_bayes"):
        times, mapping = time_values(pd.Series([0, 2, 2, 5]), "day")
    assert times.dtype == np.float64 and times.tolist() == [0.0, 2.0, 2.0, 5.0]
    assert mapping == {} and "mapped" not in caplog.text


def test_labels_carrying_one_number_are_mapped_and_logged(caplog):
    col = pd.Series(["day 10", "day2", "day0", "day2"])
    with caplog.at_level(logging.INFO, logger="vgfm_bayes"):
        times, mapping = time_values(col, "day")
    assert times.tolist() == [10.0, 2.0, 0.0, 2.0]
    assert mapping == {"day 10": 10.0, "day2": 2.0, "day0": 0.0}
    assert "obs['day']" in caplog.text and "day0=0, day2=2, day 10=10" in caplog.text


def test_numeric_strings():
    times, _ = time_values(pd.Series(["0", "1.5", "3"]), "t")
    assert times.tolist() == [0.0, 1.5, 3.0]


def test_ordered_categorical_uses_its_numbers_in_its_order():
    cat = pd.CategoricalDtype(["E6.5", "E7.5", "E8.25", "E9"], ordered=True)
    times, mapping = time_values(pd.Series(["E7.5", "E6.5", "E8.25"], dtype=cat), "stage")
    assert times.tolist() == [7.5, 6.5, 8.25]
    assert "E9" not in mapping  # unused categories are dropped


def test_ordered_categorical_without_numbers_uses_codes(caplog):
    cat = pd.CategoricalDtype(["early", "unused", "mid", "late"], ordered=True)
    col = pd.Series(["late", "early", "mid", "mid"], dtype=cat)
    with caplog.at_level(logging.INFO, logger="vgfm_bayes"):
        times, mapping = time_values(col, "stage")
    assert times.tolist() == [2.0, 0.0, 1.0, 1.0]  # codes 0..K-1 over the categories in use
    assert mapping == {"early": 0.0, "mid": 1.0, "late": 2.0}
    assert "category order" in caplog.text


def test_ordered_categorical_whose_numbers_disagree_with_its_order():
    cat = pd.CategoricalDtype(["day10", "day2", "day3"], ordered=True)
    with pytest.raises(DataError, match=r"obs\['day'\].*ordered categorical.*do not increase"):
        time_values(pd.Series(["day2", "day10", "day3"], dtype=cat), "day")


def test_unordered_names_cannot_be_mapped():
    with pytest.raises(DataError) as err:
        time_values(pd.Series(["early", "late", "early"]), "stage")
    msg = str(err.value)
    assert "obs['stage']" in msg and "'early'" in msg and "'late'" in msg
    assert "time_map" in msg and "ordered" in msg
    # an unordered categorical is no better than strings
    with pytest.raises(DataError, match="cannot read a time"):
        time_values(pd.Series(["early", "late"], dtype="category"), "stage")


def test_two_numbers_in_a_label_cannot_be_mapped():
    with pytest.raises(DataError, match=r"'rep1_day2'"):
        time_values(pd.Series(["rep1_day2", "day3"]), "sample")


def test_missing_labels_are_an_error():
    with pytest.raises(DataError, match="1 cell"):
        time_values(pd.Series(["day1", None, "day2"]), "day")


def test_time_map_overrides_the_rules():
    col = pd.Series(["early", "late", "mid"])
    times, mapping = time_values(col, "stage", {"early": 0, "mid": 1.5, "late": 4})
    assert times.tolist() == [0.0, 4.0, 1.5]
    assert mapping == {"early": 0.0, "late": 4.0, "mid": 1.5}
    # numbers in the labels are overridden too, also for numeric columns
    times, _ = time_values(pd.Series(["day0", "day1"]), "day", {"day0": 0, "day1": 1.5})
    assert times.tolist() == [0.0, 1.5]
    times, _ = time_values(pd.Series([0.0, 1.0]), "day", {"0": 10, "1": 20})
    assert times.tolist() == [10.0, 20.0]
    with pytest.raises(DataError, match=r"no number for label\(s\) 'mid'"):
        time_values(col, "stage", {"early": 0, "late": 1})


def test_read_time_map(tmp_path):
    assert read_time_map(None) is None
    assert read_time_map("day0=0, day1=1.5") == {"day0": 0.0, "day1": 1.5}
    assert read_time_map({"a": 1}) == {"a": 1.0}
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"d=0": 0, "d,1": 2.5}))
    assert read_time_map(str(path)) == {"d=0": 0.0, "d,1": 2.5}
    for bad, message in [
        ("day0", "not LABEL=NUMBER"),
        ("day0=zero", "not a finite number"),
        ("", "no labels"),
        (str(tmp_path / "missing.json"), "no such file"),
    ]:
        with pytest.raises(DataError, match=message):
            read_time_map(bad)
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="must be an object"):
        read_time_map(str(path))
