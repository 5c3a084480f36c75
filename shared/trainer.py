"""The one training loop of ensō. Every model of the suite trains through :class:`Trainer`.

It steps the model's optimisers in order (see :mod:`shared.model`), on CPU or CUDA, in fp32,
bf16 autocast with channels_last, or fp16 autocast with a gradient scaler (:mod:`shared.precision`),
on one process or many (torchrun), with exact resume from atomic checkpoints, a NaN/Inf guard,
gradient clipping, learning-rate schedules, a tqdm bar showing the loss and images/s, and metrics
to ``metrics.csv`` (and TensorBoard when installed). It leaves the process's malloc alone: ensō's
commands tune it (:mod:`shared.allocator`), library users may call
:func:`shared.allocator.reuse_freed_memory` themselves. CPU threads: ``threads`` N sets N; 0 lets
:meth:`Trainer.fit` choose by the size of a training step (:mod:`shared.threads`) and give the
caller's count back when it returns.

A run folder holds ``config.json``, ``checkpoint.pt``, ``metrics.csv`` and ``export/`` (safetensors).
"""
from __future__ import annotations

import csv
import json
import math
import random
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from . import distributed as dist
from .checkpoint import export_weights, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import save_json, to_dict
from .data.sampling import StepBatchSampler
from .errors import ConfigError, TrainingDiverged, UserError
from .model import TrainableModel
from .precision import resolve_device, resolve_precision
from .registry import describe, make_config
from .threads import choose_threads, training_step_macs


@dataclass
class TrainConfig:
    """How to train (not what): steps, batch, optimiser schedule, precision, logging."""

    steps: int = field(default=2000, metadata={"help": "optimiser steps in total"})
    batch_size: int = field(default=64, metadata={"help": "examples per step per process"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate"})
    lr_schedule: Literal["constant", "linear", "cosine"] = field(
        default="constant", metadata={"help": "decay after --decay-start: none, linear to 0, or cosine to 0"}
    )
    decay_start: float = field(default=0.0, metadata={"help": "fraction of the steps at constant lr before decay"})
    weight_decay: float = 0.0
    grad_clip: float = field(default=0.0, metadata={"help": "clip the gradient norm to this (0: off)"})
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto",
        metadata={"help": "auto: bf16 autocast + channels_last where the hardware has native bf16, fp16 with a gradient scaler on older CUDA GPUs"},
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    seed: int = 0
    workers: int = field(default=0, metadata={"help": "data loader worker processes"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: chosen by the size of a training step: 1 for small models, else every core)"})
    stop_after_minutes: float = field(
        default=0.0, metadata={"help": "stop (checkpointed) once the run's training time, summed over resumes, reaches this (0: no limit)"}
    )
    log_every: int = 25
    ckpt_every: int = field(default=500, metadata={"help": "write checkpoint.pt every this many steps"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random (call before building a model for reproducible init)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _with_defaults(described: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``describe`` dict as JSON values, with the config fields added to its model
    since it was saved filled in by their defaults (as loading its export does); unchanged if its
    model or a field is unknown now."""
    try:
        config = to_dict(make_config(described["name"], described["config"]))
    except (UserError, ConfigError):
        config = described["config"]
    return json.loads(json.dumps({"name": described["name"], "config": config}))


class Trainer:
    """Train ``model`` on ``dataset`` as ``cfg`` says, checkpointing into ``run_dir`` (None: no files).

    ``dataset[(index, item_seed)]`` returns one example; ``collate`` (default: torch's) makes a batch.
    A ``run_dir`` that already holds a checkpoint is resumed when ``resume`` is true and refused
    otherwise, so nothing is overwritten unasked.
    """

    def __init__(
        self,
        model: TrainableModel,
        dataset: Dataset,
        cfg: TrainConfig,
        run_dir: str | Path | None = None,
        resume: bool = False,
        extra_config: dict[str, Any] | None = None,
        collate: Callable | None = None,
    ):
        if cfg.threads < 0:
            raise ConfigError(f"threads must be 0 (chosen by the work) or a positive count, not {cfg.threads}")
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        #: the CPU threads fit() trains with: cfg.threads, or chosen at its first batch when that is 0
        self.threads: int | None = cfg.threads or None
        self.step_macs: float | None = None
        device = dist.init_from_env(resolve_device(cfg.device))
        self.precision = resolve_precision(cfg.precision, device, conv_model=model.conv, channels_last=model.channels_last)
        self.cfg, self.dataset, self.collate = cfg, dataset, collate
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.model = model.to(device)
        if self.precision.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        dist.broadcast_module(self.model)
        self.optimizers = model.optimizers(cfg.lr, cfg.weight_decay)
        self.schedulers = {
            n: torch.optim.lr_scheduler.LambdaLR(o, self.lr_factor) for n, o in self.optimizers.items()
        }
        # fp16 only: loss scaling against underflow (a disabled scaler passes losses and steps through)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.needs_scaler)
        self.step = 0
        self.elapsed = 0.0  # seconds spent loading batches and stepping, summed over resumes
        self.extra_config = extra_config or {}
        self._tb = None
        ckpt = self.run_dir / "checkpoint.pt" if self.run_dir else None
        if ckpt is not None and ckpt.exists():
            if not resume:
                raise UserError(f"run folder {self.run_dir} already holds a checkpoint; pass --resume to continue it or choose another --run")
            self._resume(ckpt)
        else:
            if resume:
                raise UserError(f"--resume: {ckpt if ckpt else 'a run without a folder'} does not exist; drop --resume to start a new run")
            seed_everything(cfg.seed + dist.rank())
        if self.run_dir is not None and dist.is_main():
            save_json({"model": describe(self.model), "train": to_dict(cfg), **self.extra_config}, self.run_dir / "config.json")

    # -- schedule -------------------------------------------------------------------------------
    def lr_factor(self, step: int) -> float:
        """Multiplier of the peak learning rate at ``step``."""
        cfg = self.cfg
        start = int(cfg.decay_start * cfg.steps)
        if cfg.lr_schedule == "constant" or step < start:
            return 1.0
        t = min(1.0, (step - start) / max(1, cfg.steps - start))
        if cfg.lr_schedule == "linear":
            return 1.0 - t
        return 0.5 * (1.0 + math.cos(math.pi * t))

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed_s": self.elapsed,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            **({"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}),
            "rng": rng_state(),
            "config": {"model": describe(self.model), "train": to_dict(self.cfg)},
        }

    def save(self) -> None:
        if self.run_dir is not None and dist.is_main():
            save_checkpoint(self.run_dir / "checkpoint.pt", self.state())

    def _resume(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        saved, now = _with_defaults(ckpt["config"]["model"]), json.loads(json.dumps(describe(self.model)))
        if saved != now:  # the weights may fit while the objective or the trained parts differ
            keys = sorted(set(saved["config"]) | set(now["config"]))
            changed = [f"{k} {saved['config'].get(k)!r} (given {now['config'].get(k)!r})" for k in keys if saved["config"].get(k) != now["config"].get(k)]
            if saved["name"] != now["name"]:
                changed.insert(0, f"model {saved['name']!r} (given {now['name']!r})")
            raise UserError(f"{path} was trained with {'; '.join(changed)}: resume with the run's own model flags (its config.json)")
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as e:
            raise UserError(f"{path} does not fit this model ({str(e).splitlines()[0]}); resume with the run's own config") from None
        for n, o in self.optimizers.items():
            o.load_state_dict(ckpt["optimizers"][n])
        for n, s in self.schedulers.items():
            s.load_state_dict(ckpt["schedulers"][n])
        if self.scaler.is_enabled() and "scaler" in ckpt:  # a run that trained in fp16 (else a fresh scale)
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.elapsed = float(ckpt.get("elapsed_s", 0.0))
        set_rng_state(ckpt["rng"])
        if dist.world_size() > 1:  # distinct noise per rank, reproducibly
            torch.manual_seed(self.cfg.seed + 7919 * self.step + dist.rank())

    # -- logging --------------------------------------------------------------------------------
    def _log(self, values: dict[str, float]) -> None:
        if self.run_dir is None or not dist.is_main():
            return
        path = self.run_dir / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(["step", "key", "value"])
            for k, v in values.items():
                w.writerow([self.step, k, f"{v:.6g}"])
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tb"))
            except Exception:  # tensorboard not installed
                self._tb = False
        if self._tb:
            try:
                for k, v in values.items():
                    self._tb.add_scalar(k, v, self.step)
            except OSError:  # TensorBoard is a convenience: never let it end a run
                self._tb = False

    # -- the loop -------------------------------------------------------------------------------
    def choose_threads(self, batch: Any) -> int:
        """The CPU threads for steps on batches like ``batch``: ``cfg.threads``, else chosen by the
        multiply–accumulates of one step (counted once, changing no state; kept in ``step_macs``).
        On a GPU torch's count stays."""
        if self.threads is None:
            if self.precision.device.type == "cpu":
                self.step_macs = training_step_macs(self.model, self.precision.to_device(batch), list(self.optimizers), self.precision.autocast)
                self.threads = choose_threads(self.step_macs)
            else:
                self.threads = torch.get_num_threads()
        return self.threads

    def loader(self) -> DataLoader:
        sampler = StepBatchSampler(
            len(self.dataset), self.cfg.batch_size, self.cfg.seed, self.step, dist.rank(), dist.world_size()
        )
        kw = {"collate_fn": self.collate} if self.collate is not None else {}
        # its own generator: creating the loader must not draw from the global RNG the model uses
        g = torch.Generator().manual_seed(self.cfg.seed)
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=self.cfg.workers, generator=g, **kw)

    def train_step(self, batch: Any) -> dict[str, float]:
        """One iteration: every optimiser in order; returns the logged scalars."""
        out: dict[str, float] = {}
        batch = self.precision.to_device(batch)
        self.model.train()
        for name, opt in self.optimizers.items():
            opt.zero_grad(set_to_none=True)
            with self.precision.autocast():
                result = self.model.training_step(batch, name)
            values = {k: float(v.detach()) for k, v in result.items()}
            for k, v in values.items():
                if not math.isfinite(v):
                    raise TrainingDiverged(
                        f"step {self.step + 1}: {k!r} of optimiser {name!r} is {v}; lower --lr, set --grad-clip, or try --precision fp32"
                    )
            self.scaler.scale(result["loss"]).backward()
            params = [p for g in opt.param_groups for p in g["params"]]
            dist.average_gradients(params)
            if self.cfg.grad_clip > 0:
                self.scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
                out[f"{name}/grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
            self.scaler.step(opt)  # skipped (and the scale lowered) when fp16 gradients overflowed
            with warnings.catch_warnings():  # a skipped step still advances the schedule, a function of the step count
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`")
                self.schedulers[name].step()
            prefix = "" if len(self.optimizers) == 1 else f"{name}/"
            out.update({prefix + k: v for k, v in values.items()})
        self.scaler.update()
        if self.scaler.is_enabled():
            out["loss_scale"] = float(self.scaler.get_scale())
        self.step += 1
        self.model.on_step_end(self.step)
        return out

    def fit(self, steps: int | None = None) -> dict[str, float]:
        """Train until ``steps`` (default: ``cfg.steps``) and return the last logged averages."""
        target = self.cfg.steps if steps is None else steps
        caller_threads = torch.get_num_threads()
        try:
            return self._fit(target)
        finally:
            torch.set_num_threads(caller_threads)

    def _fit(self, target: int) -> dict[str, float]:
        sums: dict[str, float] = defaultdict(float)
        count, last, t0, seen = 0, {}, time.perf_counter(), 0
        bar = tqdm(total=target, initial=self.step, disable=not (self.cfg.progress and dist.is_main()), dynamic_ncols=True, unit="step")
        it = iter(self.loader())
        budget, first = self.cfg.stop_after_minutes * 60, True
        while self.step < target and not (budget > 0 and self.elapsed >= budget):
            t_step = time.perf_counter()
            batch = next(it)
            if first:
                torch.set_num_threads(self.choose_threads(batch))
                self._log({"threads": self.threads} | ({"step_gmacs": self.step_macs / 1e9} if self.step_macs is not None else {}))
                first = False
            values = self.train_step(batch)
            self.elapsed += time.perf_counter() - t_step
            seen += self.model.batch_size_of(batch) * dist.world_size()
            for k, v in values.items():
                sums[k] += v
            count += 1
            bar.update(1)
            if self.step % self.cfg.log_every == 0 or self.step == target:
                rate = seen / max(1e-9, time.perf_counter() - t0)
                last = {k: v / count for k, v in sums.items()} | {"images_per_s": rate, "elapsed_s": self.elapsed}
                last["lr"] = self.schedulers[next(iter(self.schedulers))].get_last_lr()[0]
                bar.set_postfix(loss=f"{last.get('loss', last.get(next(iter(last)))):.4g}", img_s=f"{rate:.0f}", threads=self.threads)
                self._log(last)
                sums.clear()
                count, seen, t0 = 0, 0, time.perf_counter()
            if self.step % self.cfg.ckpt_every == 0:
                self.save()
        bar.close()
        self.save()
        if self.run_dir is not None and dist.is_main():
            export_weights(self.model, self.run_dir / "export", extra={"trained_steps": self.step})
        if self._tb:
            self._tb.flush()
        return last
