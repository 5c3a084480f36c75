"""Time series with labelled anomalies: the NAB corpus, generated series, and sliding windows.

A :class:`Series` holds raw values ``(N, F)``, point labels ``(N,)`` (True inside an anomaly
window) and the windows as index ranges. :func:`load_nab` reads one series of the Numenta Anomaly
Benchmark from ``$ENSO_DATA/nab`` (CSV ``timestamp,value``, LF or CRLF, plus
``labels/combined_windows.json``); :func:`synthetic_series` generates a seasonal signal with
injected spikes, level shifts and frequency changes, deterministically from a seed.
:func:`standardise` and :func:`sliding_windows` turn a series into ``(M, T, F)`` float windows for
the sequence autoencoder, and :func:`points_from_windows` maps per-window, per-step errors back
onto the time axis.
"""
from __future__ import annotations

import csv
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from ..errors import UserError
from ..paths import data_dir

AnomalyKind = Literal["spike", "level_shift", "frequency"]


@dataclass
class Series:
    """One series. ``values`` (N, F) float64 raw; ``labels`` (N,) bool; ``windows`` [start, end) index
    ranges of the anomalies (with their kind for generated series); ``time`` (N,) datetime64 or None."""

    name: str
    values: np.ndarray
    labels: np.ndarray
    windows: list[tuple[int, int]]
    kinds: list[str] = field(default_factory=list)
    time: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)


# -- NAB ----------------------------------------------------------------------------------------
DEFAULT_NAB_SERIES = "realKnownCause/nyc_taxi.csv"


def nab_series_names(root: Path) -> list[str]:
    """Every ``category/file.csv`` under ``root/data``, sorted."""
    return sorted(p.relative_to(root / "data").as_posix() for p in (root / "data").glob("*/*.csv"))


def resolve_nab_name(root: Path, name: str) -> str:
    """``nyc_taxi``, ``nyc_taxi.csv`` or ``realKnownCause/nyc_taxi.csv`` → the canonical key."""
    names = nab_series_names(root)
    if not names:
        raise UserError(f"{root} holds no NAB series (expected data/<category>/<file>.csv); point --nab-dir or $ENSO_DATA at the nab folder")
    want = name if name.endswith(".csv") else name + ".csv"
    if want in names:
        return want
    by_file = [n for n in names if n.split("/", 1)[1] == want]
    if len(by_file) == 1:
        return by_file[0]
    close = difflib.get_close_matches(want, names + [n.split("/", 1)[1] for n in names], n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"e.g. {DEFAULT_NAB_SERIES} ({len(names)} series in {root / 'data'})"
    raise UserError(f"unknown NAB series {name!r}; {hint}")


def read_timestamp_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A ``timestamp,value`` CSV (LF or CRLF) → (time (N,) datetime64[s], values (N,) float64)."""
    times, values = [], []
    try:
        with open(path, newline="") as fh:
            rows = csv.reader(fh)
            header = next(rows, None)
            if header is None or [h.strip() for h in header] != ["timestamp", "value"]:
                raise UserError(f"{path}: first line must be the header 'timestamp,value', not {header!r}")
            for lineno, row in enumerate(rows, start=2):
                if not row:
                    continue
                if len(row) != 2:
                    raise UserError(f"{path}: line {lineno} has {len(row)} fields, expected 'timestamp,value'")
                try:
                    times.append(np.datetime64(row[0].strip(), "s"))
                    values.append(float(row[1]))
                except ValueError:
                    raise UserError(f"{path}: line {lineno} ({','.join(row)!r}) is not 'YYYY-MM-DD HH:MM:SS,number'") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path} ({type(e).__name__}: {e}); check the file") from None
    if not values:
        raise UserError(f"{path} holds no data rows")
    return np.array(times, dtype="datetime64[s]"), np.array(values, dtype=np.float64)


def load_nab(name: str, root: str | Path | None = None) -> Series:
    """NAB series ``name`` from ``root`` (default ``$ENSO_DATA/nab``), labelled from combined_windows.json."""
    root = data_dir("nab", root, option="--nab-dir")
    key = resolve_nab_name(root, name)
    time, values = read_timestamp_csv(root / "data" / key)
    labels_path = root / "labels" / "combined_windows.json"
    try:
        all_windows = json.loads(labels_path.read_text())
    except FileNotFoundError:
        raise UserError(f"{labels_path} is missing; NAB needs labels/combined_windows.json beside data/") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{labels_path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    if key not in all_windows:
        raise UserError(f"{labels_path} has no entry for {key}")
    labels = np.zeros(len(values), dtype=bool)
    for start, end in all_windows[key]:
        labels |= (time >= np.datetime64(start, "s")) & (time <= np.datetime64(end, "s"))
    return Series(key, values[:, None], labels, label_ranges(labels), time=time)


def label_ranges(labels: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a (N,) bool array as [start, end) index pairs."""
    padded = np.concatenate([[False], labels.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def downsample(series: Series, factor: int) -> Series:
    """Mean of every ``factor`` consecutive steps (a point is anomalous if any of its steps is)."""
    if factor <= 1:
        return series
    n = len(series) // factor * factor
    values = series.values[:n].reshape(-1, factor, series.values.shape[1]).mean(1)
    labels = series.labels[:n].reshape(-1, factor).any(1)
    time = series.time[:n:factor] if series.time is not None else None
    return Series(series.name, values, labels, label_ranges(labels), time=time)


# -- generated series ---------------------------------------------------------------------------
def synthetic_series(
    length: int = 4000,
    period: int = 50,
    noise: float = 0.1,
    anomalies: int = 8,
    kinds: Sequence[AnomalyKind] = ("spike", "level_shift", "frequency"),
    features: int = 1,
    warmup: float = 0.1,
    seed: int = 0,
) -> Series:
    """A seasonal signal plus Gaussian noise with ``anomalies`` injected events, cycling ``kinds``.

    Each feature is ``sin(2πt/period + φ) + 0.4 sin(6πt/period + φ')``. Events never overlap, start
    after the first ``warmup`` fraction, and hit every feature. The noise is drawn before the events,
    so ``anomalies=0`` with the same seed is the same series without them. Spikes last 1–3 steps
    (±4–6), level shifts 0.5–1.5 periods (±1–2), frequency changes 1–2 periods (×2–3).
    """
    if length < 4 * period or period < 4:
        raise UserError(f"a synthetic series needs period >= 4 and length >= 4 periods, not length={length}, period={period}")
    bad = sorted(set(kinds) - {"spike", "level_shift", "frequency"})
    if bad or not kinds:
        raise UserError(f"unknown anomaly kind(s) {bad or 'none given'}; use spike, level_shift, frequency")
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    phase = rng.uniform(0, 2 * np.pi, size=(2, features))

    def seasonal(tt: np.ndarray, speed: float = 1.0) -> np.ndarray:
        w = 2 * np.pi * speed / period
        return np.sin(w * tt[:, None] + phase[0]) + 0.4 * np.sin(3 * w * tt[:, None] + phase[1])

    values = seasonal(t) + noise * rng.standard_normal((length, features))
    labels = np.zeros(length, dtype=bool)
    windows: list[tuple[int, int]] = []
    names: list[str] = []
    lo = int(warmup * length)
    for i in range(anomalies):
        kind = kinds[i % len(kinds)]
        if kind == "spike":
            size = int(rng.integers(1, 4))
        elif kind == "level_shift":
            size = int(rng.integers(period // 2, int(1.5 * period) + 1))
        else:
            size = int(rng.integers(period, 2 * period + 1))
        for _ in range(1000):  # a free place at least one period away from other events
            start = int(rng.integers(lo, length - size))
            if not labels[max(0, start - period) : start + size + period].any():
                break
        else:
            raise UserError(f"cannot place {anomalies} anomalies in a series of {length} steps; lower the count or lengthen the series")
        seg = slice(start, start + size)
        sign = rng.choice([-1.0, 1.0])
        if kind == "spike":
            values[seg] += sign * rng.uniform(4, 6)
        elif kind == "level_shift":
            values[seg] += sign * rng.uniform(1, 2)
        else:
            values[seg] += seasonal(t[seg], rng.uniform(2, 3)) - seasonal(t[seg])
        labels[seg] = True
        windows.append((start, start + size))
        names.append(kind)
    order = np.argsort([w[0] for w in windows])
    return Series(f"synthetic(seed={seed})", values, labels, [windows[i] for i in order], [names[i] for i in order])


# -- windows ------------------------------------------------------------------------------------
def standardise(values: np.ndarray, fit_until: int | None = None) -> np.ndarray:
    """(N, F) → zero mean, unit variance per feature, with statistics of ``values[:fit_until]``."""
    ref = values[:fit_until] if fit_until else values
    mean, std = ref.mean(0), ref.std(0)
    return (values - mean) / np.where(std > 0, std, 1.0)


def sliding_windows(values: np.ndarray | torch.Tensor, window: int, stride: int = 1) -> tuple[torch.Tensor, np.ndarray]:
    """(N, F) values → windows (M, window, F) float32 and their start indices (M,)."""
    x = torch.as_tensor(np.asarray(values), dtype=torch.float32)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) < window:
        raise UserError(f"the series has {len(x)} steps, fewer than one window of {window}; lower --window")
    w = x.unfold(0, window, stride).transpose(1, 2).contiguous()
    return w, np.arange(len(w)) * stride


def window_labels(labels: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """A window is anomalous when any of its points is: (M,) bool."""
    csum = np.concatenate([[0], np.cumsum(labels.astype(np.int64))])
    return (csum[starts + window] - csum[starts]) > 0


def points_from_windows(per_step: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Per-window, per-step scores (M, T) → per-point scores (length,), the mean over covering windows
    (NaN where no window covers a point)."""
    m, t = per_step.shape
    idx = (starts[:, None] + np.arange(t)[None, :]).ravel()
    total = np.bincount(idx, weights=per_step.ravel(), minlength=length)
    count = np.bincount(idx, minlength=length)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count
