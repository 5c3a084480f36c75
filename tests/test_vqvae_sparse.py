"""The VQ-VAE's quantiser, the sparse autoencoders, their codebook metrics, and the two uses."""
from __future__ import annotations

import json
import math
import os
import socket

import pytest
import torch
import torch.nn.functional as F

from shared.data import TensorItems
from shared.data.digits import load_digits
from shared.metrics.codebook import activation_frequency, dead_fraction, mean_l0, perplexity, usage
from shared.models.sparse import topk_relu
from shared.models.vqvae import VectorQuantizer
from shared.registry import build
from shared.trainer import TrainConfig, Trainer, seed_everything


def _settled(vq: VectorQuantizer, count: float = 10.0) -> VectorQuantizer:
    """Give every code an EMA count of ``count`` consistent with its current vector (no restarts)."""
    with torch.no_grad():
        vq.cluster_size.fill_(count)
        vq.embed_sum.copy_(vq.codebook * count)
    return vq


# -- metrics ------------------------------------------------------------------------------------
def test_codebook_metrics_on_known_indices():
    k = 8
    assert float(perplexity(torch.zeros(10, dtype=torch.long), k)) == pytest.approx(1.0)
    assert float(perplexity(torch.arange(4).repeat(5), k)) == pytest.approx(4.0, rel=1e-5)
    assert float(usage(torch.tensor([[0, 1], [1, 7]]), k)) == pytest.approx(3 / 8)
    with pytest.raises(ValueError):
        usage(torch.tensor([8]), k)
    codes = torch.tensor([[0.0, 2.0, 0.0], [1.0, 3.0, 0.0]])
    assert activation_frequency(codes).tolist() == [0.5, 1.0, 0.0]
    assert float(mean_l0(codes)) == pytest.approx(1.5)
    assert float(dead_fraction(codes)) == pytest.approx(1 / 3)


# -- the quantiser ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 4, 3, 5), (7, 4)])
def test_quantizer_contract_and_straight_through(seed, shape):
    vq = VectorQuantizer(16, 4).eval()
    z = torch.randn(*shape, requires_grad=True)
    q, idx, aux = vq(z)
    assert q.shape == z.shape and q.dtype == torch.float32
    assert idx.shape == (shape[0], *shape[2:]) and idx.dtype == torch.long
    assert aux.ndim == 0 and float(aux.detach()) > 0
    assert torch.allclose(q, vq.lookup(idx), atol=1e-6)  # the values are the codes
    # nearest code: no other code is closer
    flat = z.detach().movedim(1, -1).reshape(-1, 4)
    d = torch.cdist(flat, vq.codebook)
    assert torch.equal(d.argmin(1), idx.reshape(-1))
    w = torch.randn_like(q)
    (q * w).sum().backward()
    assert torch.allclose(z.grad, w)  # straight through: the quantiser's Jacobian is the identity
    z.grad = None
    aux.backward()
    assert z.grad.abs().sum() > 0  # the commitment loss pulls z towards its codes


def test_quantizer_computes_in_fp32_under_bf16_autocast(seed):
    vq = _settled(VectorQuantizer(16, 4)).train()
    z = torch.randn(32, 4).bfloat16()
    reference = _settled(VectorQuantizer(16, 4)).train()
    reference.load_state_dict(vq.state_dict())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, idx, _ = vq(z)
    _, ref_idx, _ = reference(z.float())
    assert q.dtype == torch.float32 and vq.codebook.dtype == torch.float32
    assert torch.equal(idx, ref_idx)
    assert torch.allclose(vq.codebook, reference.codebook)


def test_ema_update_moves_used_codes_toward_their_vectors(seed):
    vq = _settled(VectorQuantizer(8, 3, dead_threshold=0.0, decay=0.9)).train()
    z = torch.randn(256, 3) * 2
    before = vq.codebook.clone()
    _, idx, _ = vq.eval()(z)
    assert torch.equal(vq.codebook, before)  # eval mode leaves the codebook alone
    vq.train()(z)
    used = idx.unique()
    assert len(used) > 1
    for k in used:
        target = z[idx == k].mean(0)
        assert (vq.codebook[k] - target).norm() < (before[k] - target).norm()


def _one_dead_code() -> VectorQuantizer:
    """A settled 8-code quantiser whose code 3 lies far from every input and has a zero count."""
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, dead_threshold=1.0)
    with torch.no_grad():
        vq.codebook[3] = 100.0
    _settled(vq).train()
    vq.cluster_size[3] = 0.0
    return vq


def test_dead_code_restart_revives_unused_codes():
    vq, z = _one_dead_code(), torch.randn(64, 4)
    before = vq.codebook.clone()
    torch.manual_seed(1)
    _, idx, _ = vq(z)
    assert not (idx == 3).any()
    assert any(torch.equal(vq.codebook[3], row) for row in z)  # restarted on an input of the batch
    assert float(vq.cluster_size[3]) == pytest.approx(1.0)
    others = torch.arange(8) != 3
    assert ((vq.codebook[others] - before[others]).norm(dim=1) < 1.0).all()  # the live codes only moved
    # the draw comes from torch's global RNG: the same seed restarts to the same vector
    again = _one_dead_code()
    torch.manual_seed(1)
    again(z)
    assert torch.equal(again.codebook, vq.codebook)


# -- sparse codes -------------------------------------------------------------------------------
def test_topk_keeps_exactly_k_largest(seed):
    pre = torch.randn(5, 32) + 10.0  # all positive: ReLU zeroes none of the k kept
    z = topk_relu(pre, 4)
    assert ((z != 0).sum(1) == 4).all()
    kept = z.topk(4, dim=1).values
    assert torch.equal(kept, pre.topk(4, dim=1).values)
    mixed = topk_relu(torch.randn(5, 32) - 1.0, 4)  # ReLU may drop negative winners: at most k
    assert ((mixed != 0).sum(1) <= 4).all() and (mixed >= 0).all()


def test_sparse_ae_checks_its_config():
    with pytest.raises(ValueError, match="k = 9 active latents must lie between 1 and latent_dim = 8"):
        build("sparse_ae", {"latent_dim": 8, "k": 9})
    with pytest.raises(ValueError, match="VQ-VAE takes images"):
        build("vqvae", {"input_shape": (16,)})


def _losses(model, data, steps: int) -> tuple[dict, dict]:
    trainer = Trainer(model, data, TrainConfig(steps=steps, batch_size=32, lr=3e-3, progress=False, precision="fp32", log_every=1))
    first = trainer.fit(1)
    return first, trainer.fit()


def test_vqvae_trains_and_logs_codebook_use():
    x, _ = load_digits("test")
    x = F.interpolate(x, size=(16, 16), mode="bilinear")
    seed_everything(0)
    model = build("vqvae", {"input_shape": (1, 16, 16), "widths": (8, 16), "res_blocks": 0, "code_dim": 4, "codebook_size": 16})
    first, last = _losses(model, TensorItems(x), 40)
    assert last["loss"] < 0.7 * first["loss"]
    assert 1.0 <= last["perplexity"] <= 16.0 and 0.0 < last["codes_used"] <= 1.0


@pytest.mark.parametrize("sparsity,shape,widths", [("topk", (1, 8, 8), ()), ("l1", (64,), (32,))])
def test_sparse_ae_trains(sparsity, shape, widths):
    x, _ = load_digits("test")
    x = x.reshape(len(x), *shape)
    seed_everything(0)
    model = build("sparse_ae", {"input_shape": shape, "widths": widths, "latent_dim": 96, "sparsity": sparsity, "k": 6, "l1_weight": 0.05})
    first, last = _losses(model, TensorItems(x), 40)
    assert last["loss"] < 0.7 * first["loss"]
    assert 0.0 <= last["dead_fraction"] <= 1.0
    z = model.eval().encode(x)
    assert z.shape == (len(x), 96) and (z >= 0).all()
    if sparsity == "topk":
        assert ((z != 0).sum(1) <= 6).all()
    assert model.centred and model.input_mean.abs().sum() > 0  # centred on the first batch


# -- the uses -----------------------------------------------------------------------------------
def get_use(name: str):
    from shared.uses import get_use as lookup  # imported here: the spawned ranks below need none of it

    return lookup(name)


def test_tokenisation_use_end_to_end(tmp_path):
    use = get_use("tokenisation")
    cfg = use.config(image_size=16, widths=(8, 16), codebook_size=16, code_dim=4, show=3)
    use.train(cfg, use.train_config(steps=20, progress=False), tmp_path)
    numbers = json.loads(use.write_numbers(cfg, tmp_path).read_text())
    assert numbers["index_map_shape"] == [4, 4]
    assert numbers["bits_per_image_index_map"] == pytest.approx(16 * math.log2(16))
    assert numbers["bits_per_image_raw_8bit"] == 16 * 16 * 8
    assert 1.0 <= numbers["codebook_perplexity"] <= 16.0 and 0.0 < numbers["codebook_usage"] <= 1.0
    assert math.isfinite(numbers["psnr_db"]) and numbers["psnr_db"] > 5.0
    png = use.plot(cfg, tmp_path)
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"


def test_representation_use_end_to_end(tmp_path):
    use = get_use("representation")
    cfg = use.config(latent_dim=32, k=4, atoms=9)
    use.train(cfg, use.train_config(steps=20, progress=False), tmp_path)
    numbers = json.loads(use.write_numbers(cfg, tmp_path).read_text())
    assert numbers["topk"]["mean_l0"] <= 4.0
    for variant in ("topk", "l1"):
        v = numbers[variant]
        assert 0.0 < v["recon_mse_per_pixel"] < 1.0 and 0.0 <= v["dead_fraction_train"] <= 1.0
        assert 0.1 < v["linear_probe_accuracy"] <= 1.0
    assert numbers["raw_pixels"]["linear_probe_accuracy"] > 0.8
    png = use.plot(cfg, tmp_path)
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"


# -- two ranks keep one codebook ----------------------------------------------------------------
def _rank_worker(rank: int, port: int, folder: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        ema = _settled(VectorQuantizer(8, 4, dead_threshold=0.0, decay=0.5)).train()  # EMA only
        restarts = VectorQuantizer(32, 4).train()  # zero counts: every code restarts on the first call
        torch.manual_seed(rank)  # different batches and different restart draws per rank
        batches = [torch.randn(16, 4) + 3 * rank for _ in range(3)]
        for z in batches:
            ema(z)
            restarts(z)
        torch.save({"ema": ema.state_dict(), "restarts": restarts.state_dict(), "batches": batches}, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ranks_keep_identical_codebooks(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for part in ("ema", "restarts"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    # the EMA of two ranks equals one process's EMA over both ranks' batches together
    torch.manual_seed(0)
    single = _settled(VectorQuantizer(8, 4, dead_threshold=0.0, decay=0.5)).train()
    for za, zb in zip(a["batches"], b["batches"]):
        single(torch.cat([za, zb]))
    assert torch.allclose(single.codebook, a["ema"]["codebook"], atol=1e-5)
    assert torch.allclose(single.cluster_size, a["ema"]["cluster_size"], atol=1e-5)
