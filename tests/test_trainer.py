"""The shared training loop: loss goes down, exact resume, checkpoints, guards, schedules."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from shared import registry
from shared.checkpoint import load_checkpoint, load_exported, save_checkpoint
from shared.data import TensorItems
from shared.data.digits import load_digits
from shared.errors import TrainingDiverged, UserError
from shared.trainer import TrainConfig, Trainer, seed_everything

CFG = TrainConfig(steps=40, batch_size=32, lr=2e-3, precision="fp32", progress=False, log_every=10, ckpt_every=15)


def digits_vae(seed: int = 0):
    seed_everything(seed)
    return registry.build("vae", {"input_shape": (1, 8, 8), "widths": (16, 32), "latent_dim": 4})


def digits():
    x, y = load_digits("train")
    return TensorItems(x, y)


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_loss_goes_down(tmp_path):
    trainer = Trainer(digits_vae(), digits(), dataclasses.replace(CFG, steps=120), tmp_path / "run")
    first = trainer.train_step(next(iter(trainer.loader())))["loss"]
    last = trainer.fit()["loss"]
    assert last < 0.8 * first
    assert (tmp_path / "run" / "config.json").is_file() and (tmp_path / "run" / "metrics.csv").is_file()


def test_resume_is_exact(tmp_path):
    full = Trainer(digits_vae(), digits(), CFG, tmp_path / "full")
    full.fit()
    half = Trainer(digits_vae(), digits(), CFG, tmp_path / "half")
    half.fit(CFG.steps // 2)
    resumed = Trainer(digits_vae(seed=123), digits(), CFG, tmp_path / "half", resume=True)
    assert resumed.step == CFG.steps // 2
    resumed.fit()
    a, b = params(full.model), params(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_existing_run_is_not_overwritten_without_resume(tmp_path):
    Trainer(digits_vae(), digits(), dataclasses.replace(CFG, steps=2), tmp_path / "run").fit()
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(UserError, match="--resume"):
        Trainer(digits_vae(), digits(), CFG, tmp_path / "run")
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    with pytest.raises(UserError, match="does not exist"):
        Trainer(digits_vae(), digits(), CFG, tmp_path / "new", resume=True)


def test_resume_refuses_another_model_config_in_one_line(tmp_path):
    """The same weights shapes with another objective: resuming must not mix the two runs."""
    Trainer(digits_vae(), digits(), dataclasses.replace(CFG, steps=2), tmp_path / "run").fit()
    seed_everything(0)
    other = registry.build("vae", {"input_shape": (1, 8, 8), "widths": (16, 32), "latent_dim": 4, "beta": 4.0})
    with pytest.raises(UserError, match=r"beta 1\.0 \(given 4\.0\).*config\.json") as e:
        Trainer(other, digits(), CFG, tmp_path / "run", resume=True)
    assert "\n" not in str(e.value)


def test_resume_fills_config_fields_added_since_with_their_defaults(tmp_path):
    """A run saved before its model's config gained a field resumes when the field is at its default."""
    Trainer(digits_vae(), digits(), dataclasses.replace(CFG, steps=2), tmp_path / "run").fit()
    path = tmp_path / "run" / "checkpoint.pt"
    ckpt = load_checkpoint(path)
    del ckpt["config"]["model"]["config"]["beta"]  # as if beta had been added after this run was saved
    save_checkpoint(path, ckpt)
    resumed = Trainer(digits_vae(), digits(), dataclasses.replace(CFG, steps=4), tmp_path / "run", resume=True)
    assert resumed.step == 2
    seed_everything(0)
    other = registry.build("vae", {"input_shape": (1, 8, 8), "widths": (16, 32), "latent_dim": 4, "beta": 4.0})
    with pytest.raises(UserError, match=r"beta 1\.0 \(given 4\.0\)"):
        Trainer(other, digits(), CFG, tmp_path / "run", resume=True)


def test_checkpoint_loads_weights_only_and_export_round_trips(tmp_path):
    trainer = Trainer(digits_vae(), digits(), dataclasses.replace(CFG, steps=5), tmp_path / "run")
    trainer.fit()
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 5 and set(ckpt) >= {"model", "optimizers", "schedulers", "rng", "config"}
    model = load_exported(tmp_path / "run")
    x = digits().tensors[0][:8]
    with torch.no_grad():
        assert torch.equal(model(x)["x_hat"], trainer.model.eval()(x)["x_hat"])
    assert not list((tmp_path / "run").glob("*.tmp")) and not list((tmp_path / "run").glob(".*tmp"))


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    trainer = Trainer(digits_vae(), digits(), dataclasses.replace(CFG, steps=2), tmp_path / "run")
    trainer.fit()
    path = tmp_path / "run" / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="damaged"):
        load_checkpoint(path)


def test_nan_guard_names_step_and_loss():
    x = torch.full((64, 1, 8, 8), float("nan"))
    trainer = Trainer(digits_vae(), TensorItems(x), CFG)
    with pytest.raises(TrainingDiverged, match=r"step 1: 'loss'"):
        trainer.fit()


def test_lr_schedules():
    cfg = dataclasses.replace(CFG, steps=100, lr_schedule="linear", decay_start=0.5)
    t = Trainer(digits_vae(), digits(), cfg)
    assert t.lr_factor(10) == 1.0 and t.lr_factor(75) == pytest.approx(0.5) and t.lr_factor(100) == 0.0
    t.cfg = dataclasses.replace(cfg, lr_schedule="cosine", decay_start=0.0)
    assert t.lr_factor(50) == pytest.approx(0.5) and t.lr_factor(0) == 1.0


def test_grad_clip_is_logged_and_bounds_update():
    """The optimiser steps with the gradient clipped to norm ``grad_clip`` (what the step leaves in
    ``.grad``), and the norm before clipping is logged."""
    clip = 0.05
    trainer = Trainer(digits_vae(), digits(), dataclasses.replace(CFG, steps=3, grad_clip=clip))
    batches = iter(trainer.loader())
    for _ in range(3):
        out = trainer.train_step(next(batches))
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        stepped = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        assert math.isfinite(out["main/grad_norm"]) and out["main/grad_norm"] > clip  # clipping had work to do
        assert stepped <= clip * (1 + 1e-5), (stepped, out["main/grad_norm"])
        assert stepped == pytest.approx(clip, rel=1e-4)  # scaled down to the bound, not further


def test_batch_larger_than_data_is_a_clear_error():
    with pytest.raises(UserError, match="fewer than one batch"):
        Trainer(digits_vae(), TensorItems(torch.rand(10, 1, 8, 8)), CFG).fit()


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_model_trains_a_few_steps(name):
    """Each model builds from its default config and takes steps with finite losses (bf16 fast path)."""
    from tests.model_examples import example_batch

    seed_everything(0)
    model = registry.build(name)
    if getattr(model.config, "lpips_weight", 0) > 0:
        from shared.metrics.perceptual import resolve_alexnet_weights

        try:
            resolve_alexnet_weights(allow_download=False)
        except UserError as e:
            pytest.skip(f"{name} trains on LPIPS, whose backbone is absent: {e}")
    data = example_batch(model, 8)
    cfg = dataclasses.replace(CFG, steps=2, batch_size=2, precision="auto")
    out = Trainer(model, data, cfg).fit()
    assert all(math.isfinite(v) for v in out.values())


def test_throughput_counts_macs_exactly_and_measures_a_positive_rate():
    from shared.throughput import count_gmacs, matmul_gmacs

    assert count_gmacs(torch.mm, torch.rand(4, 5), torch.rand(5, 6)) * 1e9 == pytest.approx(4 * 5 * 6)
    a, b = torch.ones(20, 5, dtype=torch.int8), torch.ones(5, 6, dtype=torch.int8)
    assert count_gmacs(torch._int_mm, a, b) * 1e9 == pytest.approx(20 * 5 * 6)
    for dtype in (torch.float32, torch.bfloat16):
        rate = matmul_gmacs(dtype, n=128, repeats=2)
        assert math.isfinite(rate) and rate > 0
