"""Time labels as scanpy users have them, mapped to numbers (DESIGN 6).

An obs time column may hold

- numbers (used as they are);
- numeric strings ("2", "3.5");
- strings carrying one number ("day2", "D3.5", "E7.5", "day 10"): that number;
- an ordered categorical: its categories' numbers when every category carries one (they must
  increase in the category order), otherwise the category codes 0..K-1 in that order.

A ``time_map`` (label -> number) overrides all of this. Labels that cannot be mapped (no number,
two numbers, an unordered set of names such as "early" / "late") raise :class:`DataError`
naming the column, the labels and the fix. The mapping used is logged.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .timecourse import DataError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# an unsigned decimal number; a sign is only taken where it cannot be a separator (see below)
_NUMBER = re.compile(r"(\d+(?:\.\d*)?|\.\d+)")
_SHOWN = 8  # labels shown in an error message


def _fix_hint(key: str) -> str:
    return (
        f"pass time_map={{label: number, ...}} (CLI: --time-map 'LABEL=NUMBER,...' or a JSON "
        f"file), or make obs[{key!r}] an ordered categorical "
        f"(adata.obs[{key!r}] = adata.obs[{key!r}].astype(pd.CategoricalDtype([...], "
        "ordered=True)))"
    )


def _shown(labels) -> str:
    labels = [repr(v) for v in labels]
    more = f", ... ({len(labels)} in all)" if len(labels) > _SHOWN else ""
    return ", ".join(labels[:_SHOWN]) + more


def label_number(label) -> float | None:
    """The number a time label stands for, or None when it carries none or more than one.

    Numbers and numeric strings are read as they are ("1e3", " 2.5 "); otherwise the label must
    hold exactly one decimal number ("day2" -> 2, "E7.5" -> 7.5, "day 10" -> 10). A "-" or "+"
    right before that number is its sign only at the start of the label or after a space, "="
    or "(" ("t=-1" -> -1), never after a letter or digit ("day-2" -> 2, a separator).
    """
    if isinstance(label, bool | np.bool_):
        return None
    if isinstance(label, int | float | np.number):
        value = float(label)
        return value if math.isfinite(value) else None
    text = str(label).strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) else None
    found = list(_NUMBER.finditer(text))
    if len(found) != 1:
        return None
    m = found[0]
    value = float(m.group(1))
    start = m.start(1)
    if start > 0 and text[start - 1] in "+-":
        before = text[start - 2] if start > 1 else " "
        if start == 1 or before.isspace() or before in "=(":
            value = -value if text[start - 1] == "-" else value
    return value


def read_time_map(spec: str | Path | Mapping | None) -> dict[str, float] | None:
    """A time map from "day0=0,day1=1.5", a JSON file holding {"day0": 0, ...}, or a dict.

    Keys are compared with the labels as strings (str(label)); values must be finite numbers.
    """
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        items = list(spec.items())
        source = "time_map"
    else:
        text = str(spec)
        path = Path(text)
        source = f"--time-map {text}"
        if path.suffix.lower() == ".json" or path.is_file():
            if not path.is_file():
                raise DataError(f"{source}: no such file")
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise DataError(f"{source}: not a readable JSON file ({err})") from err
            if not isinstance(loaded, dict):
                raise DataError(f"{source}: the JSON must be an object {{label: number, ...}}")
            items = list(loaded.items())
        else:
            items = []
            for part in (p.strip() for p in text.split(",")):
                if not part:
                    continue
                if "=" not in part:
                    raise DataError(
                        f"{source}: {part!r} is not LABEL=NUMBER (e.g. day0=0,day1=1.5; labels "
                        "holding ',' or '=' need a JSON file)"
                    )
                label, value = part.rsplit("=", 1)
                items.append((label.strip(), value.strip()))
    if not items:
        raise DataError(f"{source}: no labels given")
    out: dict[str, float] = {}
    for label, value in items:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number):
            raise DataError(f"{source}: label {label!r} maps to {value!r}, not a finite number")
        out[str(label)] = number
    return out


def _from_time_map(labels, time_map: Mapping[str, float], key: str) -> dict:
    by_number = {}  # numeric labels also match numeric keys of the same value ("0" for 0.0)
    for k, v in time_map.items():
        try:
            by_number[float(k)] = v
        except (TypeError, ValueError):
            pass
    mapping = {}
    missing = []
    for label in labels:
        numeric = isinstance(label, int | float | np.number) and not isinstance(label, bool)
        if str(label) in time_map:
            mapping[label] = float(time_map[str(label)])
        elif numeric and float(label) in by_number:
            mapping[label] = float(by_number[float(label)])
        else:
            missing.append(label)
    if missing:
        raise DataError(
            f"obs[{key!r}]: the time_map has no number for label(s) {_shown(missing)} "
            f"(it maps {_shown(list(time_map))}); add them to the time_map"
        )
    return mapping


def _from_categories(cats: pd.Index, ordered: bool, key: str) -> tuple[dict, str]:
    numbers = [label_number(c) for c in cats]
    if all(v is not None for v in numbers):
        if ordered and np.any(np.diff(numbers) <= 0):
            pairs = ", ".join(f"{c!r}={v:g}" for c, v in zip(cats, numbers, strict=True))
            raise DataError(
                f"obs[{key!r}] is an ordered categorical whose categories' numbers do not "
                f"increase in its order ({pairs}); reorder the categories "
                f"(adata.obs[{key!r}].cat.reorder_categories([...])) or pass a time_map"
            )
        return dict(zip(cats, numbers, strict=True)), "the numbers in the labels"
    if ordered:
        return {c: float(i) for i, c in enumerate(cats)}, "the category order (codes 0..K-1)"
    bad = [c for c, v in zip(cats, numbers, strict=True) if v is None]
    raise DataError(
        f"obs[{key!r}]: cannot read a time from label(s) {_shown(bad)} (a label needs exactly one "
        f"number, e.g. 'day2' or 'E7.5', and these labels have no order); {_fix_hint(key)}"
    )


def time_values(
    column: pd.Series,
    key: str,
    time_map: Mapping[str, float] | None = None,
    map_name: str = "the time_map",
) -> tuple[np.ndarray, dict[str, float]]:
    """Each cell's time as a number.

    Parameters
    ----------
    column : the obs time column, shape (n,).
    key : its name, for messages.
    time_map : label -> number; overrides the rules of this module.
    map_name : what the time_map is, for the log ("the fit's mapping").

    Returns
    -------
    times : ndarray, shape (n,), float64
    mapping : dict -- str(label) -> number for every label that was mapped (empty when the
        column was already numeric and no time_map was given)
    """
    import pandas as pd  # on first use: 0.6 s of every command's start-up otherwise

    col = pd.Series(column)
    is_cat = isinstance(col.dtype, pd.CategoricalDtype)
    if is_cat:
        col = col.cat.remove_unused_categories()
    n_missing = int(col.isna().sum())
    if n_missing:
        raise DataError(
            f"obs[{key!r}]: {n_missing} cell(s) have no time label (NaN / missing); remove them "
            "or give them a time"
        )
    numeric = not is_cat and (
        pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)
    )
    if numeric and time_map is None:
        return np.asarray(col.to_numpy(), dtype=np.float64), {}
    if time_map is not None:
        labels = list(col.cat.categories) if is_cat else list(pd.unique(col))
        mapping, how = _from_time_map(labels, time_map, key), map_name
    elif is_cat:
        mapping, how = _from_categories(col.cat.categories, bool(col.cat.ordered), key)
    else:
        labels = list(pd.unique(col))
        numbers = {label: label_number(label) for label in labels}
        bad = [label for label, v in numbers.items() if v is None]
        if bad:
            raise DataError(
                f"obs[{key!r}]: cannot read a time from label(s) {_shown(bad)} (a label needs "
                f"exactly one number, e.g. 'day2' or 'E7.5'); {_fix_hint(key)}"
            )
        mapping, how = numbers, "the numbers in the labels"
    if is_cat:
        codes = col.cat.codes.to_numpy()
        lookup = np.array([mapping[c] for c in col.cat.categories], dtype=np.float64)
        times = lookup[codes]
    else:
        times = np.array([mapping[v] for v in col.to_numpy()], dtype=np.float64)
    named = {str(label): float(v) for label, v in mapping.items()}
    order = sorted(named.items(), key=lambda kv: kv[1])
    log.info(
        "obs[%r]: time labels mapped to numbers by %s: %s",
        key,
        how,
        ", ".join(f"{label}={v:g}" for label, v in order),
    )
    return times, named
