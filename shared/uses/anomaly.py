"""Anomaly detection by reconstruction error: one-class digits, and time series.

(a) Digits: the plain AE is trained on one digit class of the train split and scores every test
digit by its reconstruction error; the ROC-AUC of "is not the normal class" is reported for the
configured normal digit and, with ``--every-digit``, for each digit 0–9 as the normal class.
(b) Series: the sequence AE is trained on the windows of the first ``train_fraction`` of a series
that touch no labelled anomaly (a clean training set: this uses the labels), and scores the rest;
point and window ROC-AUCs are computed on the held-out part only. It always runs on a generated
series, and on a NAB series (``--nab-series``; ``auto`` takes realKnownCause/nyc_taxi when
``$ENSO_DATA/nab`` exists).

Figure: score histograms of the normal digit vs the others (and the AUC per normal digit), then
each series with its anomaly windows shaded and the point score underneath.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import TensorItems
from ..data.digits import load_digits
from ..data.series import (
    DEFAULT_NAB_SERIES,
    Series,
    downsample,
    load_nab,
    points_from_windows,
    sliding_windows,
    standardise,
    synthetic_series,
    window_labels,
)
from ..errors import UserError
from ..metrics.detection import roc_auc
from ..models.ae import AEConfig
from ..models.sequence import SequenceAEConfig
from ..paths import data_root
from .base import Use, load_run, register_use, train_model


@dataclass
class AnomalyConfig:
    normal_digit: int = field(default=0, metadata={"help": "the digit class the AE learns as normal"})
    every_digit: bool = field(default=True, metadata={"help": "also train one AE per other digit and report each digit's AUC as normal class"})
    digits_latent_dim: int = field(default=8, metadata={"help": "the digits AE's latent size (its other fields: the plain AE's defaults)"})
    #: the sequence AE of the series (features: the series')
    series_model: SequenceAEConfig = field(default_factory=lambda: SequenceAEConfig(window=96), metadata={"derived": ("features",), "helps": {
        "encoder": "the sequence AE's encoder",
        "window": "time steps per window",
        "latent_dim": "the sequence AE's latent size",
    }})
    train_fraction: float = field(default=0.5, metadata={"help": "train on (clean windows of) this first part of each series, evaluate on the rest"})
    series_length: int = field(default=4000, metadata={"help": "length of the generated series"})
    series_period: int = field(default=50, metadata={"help": "season of the generated series, in steps"})
    series_seed: int = 0
    nab_series: str = field(default="auto", metadata={"help": f"a NAB series (e.g. nyc_taxi), 'auto' ({DEFAULT_NAB_SERIES} when $ENSO_DATA/nab exists) or 'off'"})
    nab_dir: str = field(default="", metadata={"help": "the NAB folder (default: $ENSO_DATA/nab)"})
    nab_downsample: int = field(default=2, metadata={"help": "average every this many NAB steps into one (nyc_taxi: 2 = hourly)"})


SERIES_KINDS = ("synthetic", "nab")


def _nab_name(cfg: AnomalyConfig) -> str | None:
    """The NAB series to use, or None: 'off', or 'auto' without the data."""
    if cfg.nab_series == "off":
        return None
    if cfg.nab_series == "auto":
        have = bool(cfg.nab_dir) or (data_root() is not None and (data_root() / "nab").is_dir())
        return DEFAULT_NAB_SERIES if have else None
    return cfg.nab_series


def _series(cfg: AnomalyConfig, kind: str, nab_name: str | None = None) -> Series:
    if kind == "synthetic":
        return synthetic_series(cfg.series_length, cfg.series_period, seed=cfg.series_seed)
    if cfg.nab_downsample < 1:
        raise UserError(f"nab_downsample must be at least 1, not {cfg.nab_downsample}")
    return downsample(load_nab(nab_name or "", cfg.nab_dir or None), cfg.nab_downsample)


@dataclass
class Prepared:
    """A series cut into standardised windows (M, T, F) with start indices, labels and the train split."""

    series: Series
    z: np.ndarray
    windows: torch.Tensor
    starts: np.ndarray
    labels: np.ndarray
    train: np.ndarray
    split: int


def prepare(series: Series, window: int, train_fraction: float) -> Prepared:
    """Windows of ``series`` standardised by its training part; train windows lie before the split and
    touch no labelled anomaly."""
    if not 0.0 < train_fraction < 1.0:
        raise UserError(f"train_fraction must lie strictly between 0 and 1, not {train_fraction}")
    split = int(train_fraction * len(series))
    z = standardise(series.values, split)
    windows, starts = sliding_windows(z, window)
    labels = window_labels(series.labels, starts, window)
    train = (starts + window <= split) & ~labels
    return Prepared(series, z, windows, starts, labels, train, split)


@torch.no_grad()
def point_scores(model, windows: torch.Tensor, starts: np.ndarray, length: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(window scores (M,), point scores (length,)) of a trained sequence AE."""
    per_step = torch.cat([model.pointwise_error(windows[i : i + chunk]) for i in range(0, len(windows), chunk)]).numpy()
    return per_step.mean(1), points_from_windows(per_step, starts, length)


@torch.no_grad()
def digit_scores(model, x: torch.Tensor) -> np.ndarray:
    return model.score(x).numpy()


@register_use
class Anomaly(Use):
    name = "anomaly"
    summary = "anomaly detection by reconstruction error: one-class digits (AE), time series (sequence AE)"
    config_cls = AnomalyConfig
    default_train = {"steps": 400, "batch_size": 64, "lr": 2e-3, "lr_schedule": "cosine"}

    def _digits(self, cfg: AnomalyConfig) -> list[int]:
        if not 0 <= cfg.normal_digit <= 9:
            raise UserError(f"normal_digit must be a digit 0-9, not {cfg.normal_digit}")
        return [cfg.normal_digit] + ([d for d in range(10) if d != cfg.normal_digit] if cfg.every_digit else [])

    def train(self, cfg: AnomalyConfig, train, run: Path, resume: bool = False) -> None:
        runs = Path(run) / "runs"
        digits = self._digits(cfg)
        nab = _nab_name(cfg)
        series = {kind: self._training_series(cfg, kind, nab, train.batch_size) for kind in SERIES_KINDS if kind != "nab" or nab}
        x, y = load_digits("train")  # the fixed split of seed 0, as evaluate uses
        digit_cfg = AEConfig(input_shape=tuple(x.shape[1:]), latent_dim=cfg.digits_latent_dim)
        for d in digits:
            train_model("ae", digit_cfg, TensorItems(x[y == d]), train, runs / f"digit_{d}", resume, {"data": "digits", "normal_digit": d})
        for kind, p in series.items():
            mc = dataclasses.replace(cfg.series_model, features=p.windows.shape[2])
            extra = {"data": kind, "series": p.series.name, "train_windows": int(p.train.sum())}
            train_model("sequence_ae", mc, TensorItems(p.windows[torch.from_numpy(p.train)]), train, runs / f"series_{kind}", resume, extra)

    @staticmethod
    def _training_series(cfg: AnomalyConfig, kind: str, nab: str | None, batch_size: int) -> Prepared:
        """The series of ``kind`` cut into windows, checked before any training starts."""
        p = prepare(_series(cfg, kind, nab), cfg.series_model.window, cfg.train_fraction)
        held_out = p.series.labels[p.split :]
        if held_out.all() or not held_out.any():
            what = "only" if held_out.any() else "no"
            raise UserError(
                f"series {p.series.name} has {what} labelled anomalies after its training part, so no AUC can be computed; "
                "change train_fraction or choose another series"
            )
        if p.train.sum() < batch_size:
            raise UserError(
                f"series {p.series.name} leaves {int(p.train.sum())} clean training windows, fewer than a batch; "
                "raise train_fraction or lower window/batch_size"
            )
        return p

    def _trained_series(self, cfg: AnomalyConfig, run: Path) -> list[tuple[str, Any, Prepared]]:
        """(kind, model, prepared series) for each series run in ``run/runs``."""
        result = []
        for kind in SERIES_KINDS:
            folder = Path(run) / "runs" / f"series_{kind}"
            if kind == "nab" and not folder.is_dir():
                continue
            model = load_run(folder)
            name = json.loads((folder / "config.json").read_text()).get("series")
            result.append((kind, model, prepare(_series(cfg, kind, name), cfg.series_model.window, cfg.train_fraction)))
        return result

    def evaluate(self, cfg: AnomalyConfig, run: Path) -> dict[str, Any]:
        runs = Path(run) / "runs"
        xte, yte = load_digits("test")
        per_digit = {}
        for d in self._digits(cfg):
            per_digit[str(d)] = roc_auc(digit_scores(load_run(runs / f"digit_{d}"), xte), yte != d)
        digits: dict[str, Any] = {
            "computed_on": f"sklearn digits test split ({len(xte)} images of 8x8, seed 0), anomaly = not the normal digit",
            "normal_digit": cfg.normal_digit,
            "roc_auc": per_digit[str(cfg.normal_digit)],
        }
        if cfg.every_digit:
            digits["roc_auc_per_normal_digit"] = {str(d): per_digit[str(d)] for d in range(10)}
            digits["roc_auc_mean"] = float(np.mean(list(per_digit.values())))
        series = {}
        for kind, model, p in self._trained_series(cfg, run):
            w_score, pt_score = point_scores(model, p.windows, p.starts, len(p.series))
            test_pt = np.arange(len(p.series)) >= p.split
            test_w = p.starts >= p.split
            series[kind] = {
                "series": p.series.name,
                "length": len(p.series),
                "computed_on": f"the held-out part, steps {p.split}..{len(p.series) - 1}; training used {int(p.train.sum())} clean windows before it",
                "window": cfg.series_model.window,
                "downsample": cfg.nab_downsample if kind == "nab" else 1,
                "point_roc_auc": roc_auc(pt_score[test_pt], p.series.labels[test_pt]),
                "window_roc_auc": roc_auc(w_score[test_w], p.labels[test_w]),
                "test_points": int(test_pt.sum()),
                "anomalous_test_points": int(p.series.labels[test_pt].sum()),
                "test_windows": int(test_w.sum()),
                "anomalous_test_windows": int(p.labels[test_w].sum()),
                "anomaly_windows": len(p.series.windows),
            }
        return {"digits": digits, "series": series}

    def plot(self, cfg: AnomalyConfig, run: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..plotting import save_figure

        runs = Path(run) / "runs"
        xte, yte = load_digits("test")
        digits = self._digits(cfg)
        s = digit_scores(load_run(runs / f"digit_{cfg.normal_digit}"), xte)
        normal = (yte == cfg.normal_digit).numpy()
        trained = self._trained_series(cfg, run)
        fig = plt.figure(figsize=(13, 3.2 + 3.2 * len(trained)))
        gs = fig.add_gridspec(1 + len(trained), 2, height_ratios=[1.0] + [1.15] * len(trained))
        ax = fig.add_subplot(gs[0, 0])
        bins = np.geomspace(max(s.min(), 1e-6), s.max(), 40)
        ax.hist(s[~normal], bins=bins, alpha=0.6, label="other digits", color="tab:red")
        ax.hist(s[normal], bins=bins, alpha=0.6, label=f"digit {cfg.normal_digit} (normal)", color="tab:blue")
        ax.set_xscale("log")
        ax.set_xlabel("reconstruction error (MSE)")
        ax.set_ylabel("test images")
        ax.set_title(f"AE trained on digit {cfg.normal_digit}: AUC {roc_auc(s, ~normal):.3f}")
        ax.legend(fontsize=8)
        ax = fig.add_subplot(gs[0, 1])
        aucs = [roc_auc(digit_scores(load_run(runs / f"digit_{d}"), xte), yte != d) for d in sorted(digits)]
        ax.bar(sorted(digits), aucs, color="tab:gray")
        ax.set_ylim(min(0.5, min(aucs) - 0.02), 1.0)
        ax.set_xticks(sorted(digits))
        ax.set_xlabel("normal digit")
        ax.set_ylabel("ROC-AUC")
        ax.set_title("one-class AUC per normal digit")
        for i, (kind, model, p) in enumerate(trained):
            _, pt = point_scores(model, p.windows, p.starts, len(p.series))
            test = np.arange(len(p.series)) >= p.split
            inner = gs[1 + i, :].subgridspec(2, 1, height_ratios=[2.0, 1.2], hspace=0.05)
            top = fig.add_subplot(inner[0])
            bottom = fig.add_subplot(inner[1], sharex=top)
            t = np.arange(len(p.series))
            top.plot(t, p.z[:, 0], lw=0.5, color="black")
            for a, b in p.series.windows:
                for axis in (top, bottom):
                    axis.axvspan(a, b, color="tab:red", alpha=0.25, lw=0)
            for axis in (top, bottom):
                axis.axvline(p.split, color="tab:blue", ls="--", lw=1)
            top.set_ylabel("standardised")
            top.tick_params(labelbottom=False)
            top.set_title(
                f"{p.series.name}: anomaly windows shaded, train | test split dashed; "
                f"held-out point AUC {roc_auc(pt[test], p.series.labels[test]):.3f}",
                fontsize=10,
            )
            bottom.plot(t, pt, lw=0.6, color="tab:purple")
            bottom.set_yscale("log")
            bottom.set_ylabel("error per step")
            bottom.set_xlabel("time step" + (f" (NAB steps averaged by {cfg.nab_downsample})" if kind == "nab" and cfg.nab_downsample > 1 else ""))
        return save_figure(fig, self.figure_path(run))
