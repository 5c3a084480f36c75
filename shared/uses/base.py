"""The :class:`Use` protocol, its registry, and the one helper uses train their models with."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from torch.utils.data import Dataset

from ..checkpoint import load_exported
from ..config import save_json
from ..errors import UserError
from ..registry import build
from ..trainer import TrainConfig, Trainer, seed_everything


class Use:
    """One use of an autoencoder. Subclasses set ``name``, ``summary``, ``config_cls`` and
    ``default_train`` and implement :meth:`train`, :meth:`evaluate` and :meth:`plot`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    config_cls: ClassVar[type]
    #: TrainConfig overrides for this use (the CLI's --steps etc. override these in turn)
    default_train: ClassVar[dict[str, Any]] = {}
    #: what ``ae demo`` changes on top of those: a short schedule (TrainConfig) and config fields
    demo_train: ClassVar[dict[str, Any]] = {}
    demo_config: ClassVar[dict[str, Any]] = {}

    def train_config(self, **overrides: Any) -> TrainConfig:
        return dataclasses.replace(TrainConfig(), **{**self.default_train, **overrides})

    def folder(self, out: Path) -> Path:
        return Path(out) / self.name

    def train(self, cfg: Any, train: TrainConfig, out: Path, resume: bool = False) -> None:
        raise NotImplementedError

    def evaluate(self, cfg: Any, out: Path) -> dict[str, Any]:
        """Compute the use's numbers from the trained runs; the caller writes them to JSON."""
        raise NotImplementedError

    def plot(self, cfg: Any, out: Path) -> Path:
        """Draw the use's figure into ``OUT/<use>/<use>.png`` and return its path."""
        raise NotImplementedError

    def write_numbers(self, cfg: Any, out: Path) -> Path:
        numbers = self.evaluate(cfg, out)
        path = self.folder(out) / "numbers.json"
        save_json({"use": self.name, "config": dataclasses.asdict(cfg), **numbers}, path)
        return path


USES: dict[str, Use] = {}


def register_use(cls: type[Use]) -> type[Use]:
    USES[cls.name] = cls()
    return cls


def get_use(name: str) -> Use:
    if name not in USES:
        raise UserError(f"unknown use {name!r}; known uses: {', '.join(sorted(USES))}")
    return USES[name]


def train_model(
    model_name: str,
    model_config: dict[str, Any],
    dataset: Dataset,
    train: TrainConfig,
    run_dir: Path,
    resume: bool = False,
    extra_config: dict[str, Any] | None = None,
):
    """Build ``model_name`` (seeded by ``train.seed``), fit it in ``run_dir``; returns the trained model."""
    seed_everything(train.seed)
    model = build(model_name, model_config)
    Trainer(model, dataset, train, run_dir, resume=resume, extra_config=extra_config).fit()
    return model.cpu().eval()


def run_summary(run_dir: Path) -> dict[str, Any]:
    """How a run was trained: steps, batch size and seconds spent training (summed over resumes)."""
    from ..checkpoint import load_checkpoint

    ckpt = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    train = ckpt["config"]["train"]
    return {"steps": int(ckpt["step"]), "batch_size": train["batch_size"], "training_s": round(float(ckpt.get("elapsed_s", 0.0)), 1)}


def load_run(run_dir: Path):
    """The exported model of a finished run, on CPU in eval mode; a clear error if it is not trained yet."""
    if not (Path(run_dir) / "export" / "model.json").is_file():
        raise UserError(f"{run_dir} holds no trained model yet; run 'ae train' for this use first (same -o)")
    return load_exported(run_dir)
