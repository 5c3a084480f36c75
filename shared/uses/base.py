"""The :class:`Use` protocol, its registry, and the one helper uses train their models with.

A use works in one folder, its *run* (``ae train USE --run DIR``): ``runs/`` holds one training
run per model, ``use_config.json`` the use's config, ``numbers.json`` and ``USE.png`` what
:meth:`Use.evaluate` and :meth:`Use.plot` make of them. A use's config embeds its model's config
(a nested dataclass, :mod:`shared.config`), whose data-given fields the use fills in (``derived``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from torch.utils.data import Dataset

from ..checkpoint import load_exported
from ..config import from_dict, save_json, to_dict
from ..errors import UserError
from ..registry import build, entry
from ..trainer import TrainConfig, Trainer, seed_everything


class Use:
    """One use of an autoencoder. Subclasses set ``name``, ``summary``, ``config_cls`` and
    ``default_train`` and implement :meth:`train`, :meth:`evaluate` and :meth:`plot`, each given the
    use's config and its run folder."""

    name: ClassVar[str]
    summary: ClassVar[str]
    config_cls: ClassVar[type]
    #: TrainConfig overrides for this use (the CLI's --steps etc. override these in turn)
    default_train: ClassVar[dict[str, Any]] = {}
    #: what ``ae demo`` changes on top of those: a short schedule (TrainConfig) and config fields
    demo_train: ClassVar[dict[str, Any]] = {}
    demo_config: ClassVar[dict[str, Any]] = {}
    #: whether :meth:`evaluate` and :meth:`plot` take a ``device`` (else they compute on the CPU)
    eval_on_device: ClassVar[bool] = False

    def train_config(self, **overrides: Any) -> TrainConfig:
        return dataclasses.replace(TrainConfig(), **{**self.default_train, **overrides})

    def config(self, **values: Any) -> Any:
        """The use's config from field values by their flag names (``latent_dim=4`` lands in the model's config)."""
        return from_dict(self.config_cls, values)

    def train(self, cfg: Any, train: TrainConfig, run: Path, resume: bool = False) -> None:
        """Train the use's model(s) into ``run/runs/``."""
        raise NotImplementedError

    def evaluate(self, cfg: Any, run: Path) -> dict[str, Any]:
        """Compute the use's numbers from the trained runs in ``run``; the caller writes them to JSON."""
        raise NotImplementedError

    def plot(self, cfg: Any, run: Path) -> Path:
        """Draw the use's figure into ``run/<use>.png`` and return its path."""
        raise NotImplementedError

    def figure_path(self, run: Path) -> Path:
        return Path(run) / f"{self.name}.png"

    def write_numbers(self, cfg: Any, run: Path, **kw: Any) -> Path:
        """:meth:`evaluate` (``kw``: its ``device``, where it takes one), written to ``run/numbers.json``."""
        numbers = self.evaluate(cfg, run, **kw)
        path = Path(run) / "numbers.json"
        save_json({"use": self.name, "config": to_dict(cfg), **numbers}, path)
        return path


USES: dict[str, Use] = {}


def register_use(cls: type[Use]) -> type[Use]:
    USES[cls.name] = cls()
    return cls


def get_use(name: str) -> Use:
    if name not in USES:
        raise UserError(f"unknown use {name!r}; known uses: {', '.join(sorted(USES))}")
    return USES[name]


def config_as(model_name: str, config: Any, **changes: Any) -> Any:
    """``config``'s fields, with ``changes``, as the config of model ``model_name`` (a VAE's as the CVAE's)."""
    return from_dict(entry(model_name).config_cls, {**dataclasses.asdict(config), **changes})


def train_model(
    model_name: str,
    model_config: Any,
    dataset: Dataset,
    train: TrainConfig,
    run_dir: Path,
    resume: bool = False,
    extra_config: dict[str, Any] | None = None,
):
    """Build ``model_name`` from ``model_config`` (its config dataclass or a dict; seeded by
    ``train.seed``), fit it in ``run_dir``; returns the trained model."""
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
        raise UserError(f"{run_dir} holds no trained model yet; run 'ae train' for this use first (same --run)")
    return load_exported(run_dir)
