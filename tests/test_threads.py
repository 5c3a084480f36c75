"""CPU threads: --threads N sets N, 0 chooses by the size of the work; the trainer's choice changes no result."""
from __future__ import annotations

import csv
import dataclasses

import pytest
import torch

from shared import threads
from shared.checkpoint import rng_state
from shared.model import TrainableModel
from shared.threads import available_cores, choose_threads, training_step_macs, use_threads
from shared.trainer import TrainConfig, Trainer
from tests.test_trainer import digits, digits_vae

CFG = TrainConfig(steps=12, batch_size=32, lr=2e-3, precision="fp32", progress=False, log_every=4, ckpt_every=6)


@pytest.fixture(autouse=True)
def keep_threads():
    """Give the process its thread count back after each test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class Linear(TrainableModel):
    """One 5 → 6 linear layer with a squared loss: 30 multiply–accumulates per example forward."""

    conv = False

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(5, 6)

    def training_step(self, batch, optimizer):
        return {"loss": self.lin(batch).pow(2).mean()}


def same_rng(a: dict, b: dict) -> bool:
    return torch.equal(a["torch"], b["torch"]) and torch.equal(a["numpy"][1], b["numpy"][1]) and a["python"] == b["python"]


def test_an_explicit_count_is_set_and_returned():
    assert use_threads(1, work_macs=1e15) == 1 and torch.get_num_threads() == 1
    assert use_threads(2, work_macs=1.0) == 2 and torch.get_num_threads() == 2


def test_auto_gives_small_work_one_thread_and_large_work_every_core(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert choose_threads(threads.SMALL_WORK_MACS / 10) == 1
    assert choose_threads(threads.SMALL_WORK_MACS * 10) == available_cores()
    assert choose_threads(None) == available_cores()  # unknown work is taken as large
    assert use_threads(0, threads.SMALL_WORK_MACS / 10) == 1 and torch.get_num_threads() == 1


def test_auto_respects_omp_num_threads_for_large_work(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(threads.SMALL_WORK_MACS * 10) == 3
    assert choose_threads(threads.SMALL_WORK_MACS / 10) == 1  # small work stays on one thread
    assert use_threads(0, None) == 3 and torch.get_num_threads() == 3


def test_a_negative_count_is_refused():
    with pytest.raises(ValueError, match="threads"):
        use_threads(-1)
    with pytest.raises(ValueError, match="threads"):
        Trainer(digits_vae(), digits(), dataclasses.replace(CFG, threads=-2))


def test_a_training_step_is_counted_exactly_and_changes_no_state():
    torch.manual_seed(0)
    model = Linear()
    assert training_step_macs(model, torch.rand(7, 5), ["main"]) == pytest.approx(3 * 7 * 5 * 6)
    # a VAE draws noise and has batch norm: neither its RNG stream nor its state may move
    vae, x = digits_vae().eval(), torch.rand(32, 1, 8, 8)
    before, rng = {k: v.clone() for k, v in vae.state_dict().items()}, rng_state()
    macs = training_step_macs(vae, x, ["main"])
    assert macs > 0 and macs == training_step_macs(vae, x.flip(0), ["main"])
    assert same_rng(rng, rng_state())
    assert not vae.training and all(torch.equal(before[k], v) for k, v in vae.state_dict().items())


def metrics(run) -> dict[str, list[float]]:
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    return {k: [float(r["value"]) for r in rows if r["key"] == k] for k in {r["key"] for r in rows}}


def test_the_trainers_choice_trains_as_the_same_explicit_count_and_is_recorded(tmp_path):
    torch.set_num_threads(2)
    auto = Trainer(digits_vae(), digits(), CFG, tmp_path / "auto")
    auto.fit()
    assert auto.threads == 1 and auto.step_macs < threads.SMALL_WORK_MACS  # the digits VAE is small work
    assert torch.get_num_threads() == 2  # fit gives the caller's count back
    explicit = Trainer(digits_vae(), digits(), dataclasses.replace(CFG, threads=1), tmp_path / "one")
    explicit.fit()
    a, b = auto.model.state_dict(), explicit.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    m = metrics(tmp_path / "auto")
    assert m["threads"] == [1.0] and m["step_gmacs"][0] == pytest.approx(auto.step_macs / 1e9, rel=1e-5)
    assert metrics(tmp_path / "one")["threads"] == [1.0]


def test_the_choice_draws_no_randomness_and_large_steps_get_every_core(monkeypatch):
    monkeypatch.setattr(threads, "SMALL_WORK_MACS", 1.0)  # every step counts as large here
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    trainer = Trainer(digits_vae(), digits(), CFG)
    batch = next(iter(trainer.loader()))
    rng, before = rng_state(), {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.choose_threads(batch) == 2
    assert same_rng(rng, rng_state())
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
