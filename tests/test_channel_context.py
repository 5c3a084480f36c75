"""The channel-context codec (``mean_scale_cc``): an untrained context codes exactly as its
hyperprior; a trained one changes the coded Gaussians and rebuilds the encoder's latent; it trains
alone from a mean_scale codec and ships only its own weights. Tiny models, no shipped weights
needed (round trips and thread-count invariance: tests/test_codec.py's ``codec`` fixture)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from compress.codec import Codec
from compress.container import parse
from compress.models.compressai_adapter import medians
from compress.models.entropy_coding import RansStream, rans_decode, rans_encode
from shared.checkpoint import load_checkpoint, load_exported
from tests.test_codec import image, small_codec
from tests.test_codec_variants import TINY, compress_cli, write_photos


@pytest.fixture(scope="module")
def cc_codec() -> Codec:
    return small_codec("mean_scale_cc")


def test_untrained_context_codes_exactly_as_the_hyperprior():
    base, cc = small_codec("mean_scale"), small_codec("mean_scale_cc", active_context=False)
    cc.model.load_state_dict(base.model.state_dict(), strict=False)
    x = image(3, 96, 128, seed=3)
    a, b = base.encode(x, 0.6), cc.encode(x, 0.6)
    assert parse(a)[1] == parse(b)[1]  # the same z and y bytes
    assert torch.equal(base.decode(a), cc.decode(b))


def test_context_changes_the_coded_gaussians(cc_codec):
    """(Round trips and thread-count invariance: tests/test_codec.py's ``codec`` fixture runs mean_scale_cc.)"""
    x = image(3, 96, 128, seed=3)
    model = cc_codec.model
    y = cc_codec.analyse(x) * model.gains(torch.tensor([0.6]))[0]
    with torch.no_grad():
        z_hat = model.entropy_bottleneck.quantize(model.h_a(y), "dequantize", medians(model.entropy_bottleneck))
        scales, means = model.hyper_parameters(z_hat)
        g = model.groups()[1]
        coded = [torch.round(y[:, model.groups()[0]].double() - means[:, model.groups()[0]])]
        sc, mu = model.corrected(1, scales, means, coded, model.integer_net(model.context[0], precise_last=True))
    assert not torch.equal(mu, means[:, g]) and not torch.equal(sc, scales[:, g])


def test_decoded_latent_is_the_encoders(cc_codec):
    """What the decoder rebuilds group by group equals ŷ rounded about the encoder's corrected means."""
    model = cc_codec.model
    x = image(3, 128, 128, seed=6)
    y = cc_codec.analyse(x) * model.gains(torch.tensor([0.8]))[0]
    with torch.no_grad():
        strings = model.compress_latent(y)
        y_hat = model.decompress_latent(strings, y.shape[-2:])
    assert (y_hat - y).abs().max() <= 0.5 + 1e-4


def test_rans_stream_decodes_parts_of_one_string():
    gc = small_codec("mean_scale").model.gaussian_conditional
    g = torch.Generator().manual_seed(0)
    indexes = torch.randint(0, len(gc.scale_table), (3, 200), generator=g, dtype=torch.int32)
    symbols = torch.randint(-4, 5, (3, 200), generator=g, dtype=torch.int32)
    string = rans_encode(gc, symbols, indexes)
    stream = RansStream(gc, string, indexes.numel())
    parts = [stream.decode(indexes[i]) for i in range(3)]
    assert torch.equal(torch.stack(parts), rans_decode(gc, string, indexes)) and torch.equal(torch.stack(parts), symbols)
    with pytest.raises(ValueError, match="left"):
        stream.decode(indexes[0])


def test_context_trains_alone_from_a_mean_scale_codec_and_ships_only_itself(tmp_path):
    photos = write_photos(tmp_path / "photos")
    weights = tmp_path / "weights"
    done = compress_cli("train", "--data", photos, "--run", tmp_path / "base_run", "--crop", "64", "--steps", "2", *TINY)
    assert done.returncode == 0, done.stderr
    assert compress_cli("export", tmp_path / "base_run", "-o", weights / "tiny").returncode == 0
    run = tmp_path / "cc_run"
    done = compress_cli("train", "--data", photos, "--run", run, "--crop", "128", "--steps", "3", *TINY, "--lr", "1e-2",
                        "--model", "mean_scale_cc", "--init", weights / "tiny", "--train-only", "context")
    assert done.returncode == 0, done.stderr
    base = load_exported(weights / "tiny").state_dict()
    trained = load_checkpoint(run / "checkpoint.pt")["model"]
    for name, value in trained.items():
        if not name.startswith("context."):
            assert torch.equal(value, base[name]), name
    assert not torch.equal(trained["context.0.4.weight"], torch.zeros_like(trained["context.0.4.weight"]))
    done = compress_cli("export", run, "-o", weights / "tiny_cc", "--base", weights / "tiny")
    assert done.returncode == 0, done.stderr
    stored = load_file(str(weights / "tiny_cc" / "model.safetensors"))
    assert stored and all(k.startswith("context.") for k in stored)
    assert json.loads((weights / "tiny_cc" / "model.json").read_text())["name"] == "mean_scale_cc"
    codec = Codec.load(weights / "tiny_cc")
    x = image(3, 64, 96, seed=2)
    assert codec.decode(codec.encode(x, 0.5)).shape == x.shape


def test_context_options_are_refused_for_other_codecs(tmp_path):
    photos = write_photos(tmp_path / "photos", n=1)
    # --model-slices: the old spelling, still accepted; the message names the flag as --help shows it
    done = compress_cli("train", "--data", photos, "--run", tmp_path / "run", "--crop", "64", "--steps", "1", *TINY, "--model-slices", "2")
    assert done.returncode == 2 and "--slices is not an option" in done.stderr and "Traceback" not in done.stderr
    done = compress_cli("train", "--data", photos, "--run", tmp_path / "run", "--crop", "64", "--steps", "1", *TINY, "--train-only", "context")
    assert done.returncode == 2 and "no such parameters" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
