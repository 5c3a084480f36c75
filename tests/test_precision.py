"""Precision choice (bf16 only where it is native, fp16 with a gradient scaler on older GPUs, CPUs
unchanged) with the hardware mocked, and the trainer's fp16 path with a real GradScaler on CPU."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import shared.precision as precision
from shared import registry
from shared.checkpoint import load_checkpoint
from shared.data import TensorItems
from shared.data.digits import load_digits
from shared.errors import UserError
from shared.precision import resolve_precision
from shared.trainer import TrainConfig, Trainer, seed_everything

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.fixture
def gpu(monkeypatch):
    """Pretend to be a CUDA GPU of a given compute capability, whose bf16 torch calls supported
    (as ``is_bf16_supported`` says by default even where bf16 is only emulated)."""

    def set_capability(major: int, minor: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)

    return set_capability


@pytest.mark.parametrize("capability,name", [((6, 0), "fp16"), ((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((8, 6), "bf16"), ((9, 0), "bf16")])
def test_auto_picks_bf16_only_on_compute_capability_8_and_up(gpu, capability, name):
    gpu(*capability)
    p = resolve_precision("auto", CUDA)
    assert p.name == name
    assert p.dtype == (torch.bfloat16 if name == "bf16" else torch.float16)
    assert p.needs_scaler == (name == "fp16")
    assert p.channels_last  # a conv model that does not opt out
    assert not resolve_precision("auto", CUDA, channels_last=False).channels_last
    assert resolve_precision("auto", CUDA, conv_model=False).name == name  # on a GPU, MLPs too


def test_bf16_asked_for_on_an_emulating_gpu_is_refused_with_the_alternative(gpu):
    gpu(7, 5)
    with pytest.raises(UserError, match=r"compute capability 7\.5\) has no native bf16.*use --precision fp16 or fp32"):
        resolve_precision("bf16", CUDA)
    gpu(8, 0)
    assert resolve_precision("bf16", CUDA).name == "bf16"


@pytest.mark.parametrize("capability", [(7, 5), (8, 6)])
def test_fp16_and_fp32_can_be_asked_for_on_any_gpu(gpu, capability):
    gpu(*capability)
    assert resolve_precision("fp16", CUDA).needs_scaler
    p = resolve_precision("fp32", CUDA)
    assert p.name == "fp32" and p.dtype is None and not p.needs_scaler and not p.channels_last


@pytest.mark.parametrize("native", [False, True])
def test_cpu_choice_is_unchanged(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    conv = resolve_precision("auto", CPU)
    assert conv.name == ("bf16" if native else "fp32") and conv.channels_last == native
    assert resolve_precision("auto", CPU, conv_model=False).name == "fp32"  # small MLPs: fp32 is faster
    assert resolve_precision("bf16", CPU).name == "bf16"  # asked for: given, native or not
    assert not resolve_precision("auto", CPU).needs_scaler


def test_unknown_precision_names_the_choices():
    with pytest.raises(UserError, match="fp32, bf16, fp16 or auto, not 'fp64'"):
        resolve_precision("fp64", CPU)


def test_precision_flag_offers_fp16():
    import typing

    hints = typing.get_type_hints(TrainConfig)
    assert "fp16" in typing.get_args(hints["precision"])


# -- the trainer's fp16 path, with a real GradScaler (torch runs fp16 autocast on CPU) -----------
CFG = TrainConfig(steps=12, batch_size=32, lr=2e-3, precision="fp16", device="cpu", progress=False, log_every=4, ckpt_every=5)


def digits_vae(seed: int = 0):
    seed_everything(seed)
    return registry.build("vae", {"input_shape": (1, 8, 8), "widths": (16, 32), "latent_dim": 4})


def digits():
    return TensorItems(load_digits("train")[0])


def test_fp16_trains_with_a_scaler_and_fp32_has_none():
    trainer = Trainer(digits_vae(), digits(), CFG)
    assert trainer.precision.name == "fp16" and trainer.scaler.is_enabled()
    first = trainer.train_step(next(iter(trainer.loader())))
    out = trainer.fit()
    # torch's initial scale, 2^16, overflows this VAE's fp16 gradients: those steps are skipped
    # and the scale halved until they fit
    assert out["loss_scale"] < 2.0**16 and out["loss_scale"] == 2.0 ** round(torch.log2(torch.tensor(out["loss_scale"])).item())
    assert out["loss"] < first["loss"]
    plain = Trainer(digits_vae(), digits(), dataclasses.replace(CFG, precision="fp32"))
    assert not plain.scaler.is_enabled()
    assert "loss_scale" not in plain.train_step(next(iter(plain.loader())))


def test_gradients_are_unscaled_before_clipping():
    batch = next(iter(Trainer(digits_vae(), digits(), CFG).loader()))
    norms = {}
    for prec in ("fp32", "fp16"):
        trainer = Trainer(digits_vae(), digits(), dataclasses.replace(CFG, precision=prec, grad_clip=1e9))
        trainer.scaler.load_state_dict(trainer.scaler.state_dict() | {"scale": 2.0**8})  # no overflow at this scale
        norms[prec] = trainer.train_step(batch)["main/grad_norm"]
    # scaled gradients would be 256 times larger; fp16 autocast moves the norm only a little
    assert norms["fp16"] == pytest.approx(norms["fp32"], rel=0.05)


def test_an_overflowing_step_is_skipped_and_the_scale_lowered():
    trainer = Trainer(digits_vae(), digits(), CFG)
    state = trainer.scaler.state_dict()
    trainer.scaler.load_state_dict(state | {"scale": 2.0**127})  # scaled gradients overflow fp32
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    out = trainer.train_step(next(iter(trainer.loader())))
    assert out["loss_scale"] == 2.0**126
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k != "steps_done")


def test_fp16_resume_is_exact_and_keeps_the_scaler_state(tmp_path):
    full = Trainer(digits_vae(), digits(), CFG, tmp_path / "full")
    full.fit()
    half = Trainer(digits_vae(), digits(), CFG, tmp_path / "half")
    half.fit(6)
    assert load_checkpoint(tmp_path / "half" / "checkpoint.pt")["scaler"]["scale"] == half.scaler.get_scale() < 2.0**16
    resumed = Trainer(digits_vae(seed=123), digits(), CFG, tmp_path / "half", resume=True)
    assert resumed.scaler.state_dict() == half.scaler.state_dict()
    resumed.fit()
    assert resumed.scaler.state_dict() == full.scaler.state_dict()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "scaler" not in load_checkpoint(_fp32_run(tmp_path / "plain"))


def _fp32_run(folder):
    Trainer(digits_vae(), digits(), dataclasses.replace(CFG, precision="fp32", steps=2), folder).fit()
    return folder / "checkpoint.pt"
