"""Degraded and synthetic training crops (shared/data/degradations.py) and compress train's --degrade/--synthetic."""
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from shared.data.degradations import DEGRADATIONS, Degraded, synthetic_crop
from shared.data.sampling import item_generator


class Crops(torch.utils.data.Dataset):
    """Smooth random 48×40 RGB crops keyed by (index, seed), 8-bit like ImageFolder's."""

    def __len__(self):
        return 16

    def __getitem__(self, key):
        i, seed = key
        g = torch.Generator().manual_seed(i * 1000 + seed)
        x = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 5, generator=g), size=(48, 40), mode="bilinear", align_corners=False)[0]
        return x.mul(255).round().div(255)


def is_8bit_image(x, shape=(3, 48, 40)):
    return x.shape == shape and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and torch.equal(x.mul(255).round(), x.mul(255))


def test_no_fractions_leave_the_crops_alone():
    base = Crops()
    ds = Degraded(base)
    assert all(torch.equal(ds[(i, 7)], base[(i, 7)]) for i in range(8))


@pytest.mark.parametrize("kind", list(DEGRADATIONS))
def test_each_degradation_changes_the_crop_and_keeps_an_8bit_rgb_crop(kind):
    base = Crops()
    ds = Degraded(base, degrade=1.0, kinds=(kind,))
    for i in range(4):
        y = ds[(i, 3)]
        assert is_8bit_image(y)
        assert (y - base[(i, 3)]).abs().mean() > 1 / 255, kind


def test_noise_strength_is_in_its_documented_range():
    x = torch.full((3, 64, 64), 0.5)
    for seed in range(20):
        sigma = (DEGRADATIONS["noise"](x, item_generator(seed)) - x).std()
        assert 1.5 / 255 < sigma < 31 / 255


def test_items_are_a_pure_function_of_their_key():
    ds = Degraded(Crops(), degrade=0.5, synthetic=0.25)
    assert all(torch.equal(ds[(i, s)], ds[(i, s)]) for i in range(4) for s in (1, 2))
    assert not torch.equal(ds[(0, 1)], ds[(0, 2)])


def test_fractions_are_kept_over_many_items():
    base = Crops()
    ds = Degraded(base, degrade=0.3, synthetic=0.2)
    changed = sum(not torch.equal(ds[(i % 16, s)], base[(i % 16, s)]) for s in range(25) for i in range(16))
    assert 0.4 * 400 < changed < 0.6 * 400


def test_synthetic_crops_cover_their_kinds():
    crops = [synthetic_crop(48, 40, item_generator(s)) for s in range(40)]
    assert all(is_8bit_image(c) for c in crops)
    colours = [torch.unique(c.flatten(1), dim=1).shape[1] for c in crops]
    assert min(colours) <= 12  # flat rectangles and line art: few colours
    assert max(colours) > 40  # gradients and antialiased text: many


@pytest.mark.parametrize("args", [{"degrade": 1.5}, {"degrade": 0.7, "synthetic": 0.5}, {"synthetic": -0.1}, {"kinds": ("snow",)}, {"kinds": ()}])
def test_bad_settings_are_value_errors(args):
    with pytest.raises(ValueError):
        Degraded(Crops(), **args)


def test_compress_train_degrades_and_records_it_and_refuses_bad_fractions(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray((Crops()[(i, 0)].permute(1, 2, 0).repeat(2, 2, 1) * 255).byte().numpy()).save(photos / f"{i}.png")
    cli = [sys.executable, "-m", "compress.cli", "train", "--data", str(photos), "--crop", "64", "--steps", "1", "--batch-size", "2",
           "--N", "16", "--M", "24", "--no-progress", "--precision", "fp32", "--threads", "1"]
    bad = subprocess.run([*cli, "--run", str(tmp_path / "bad"), "--degrade", "0.8", "--synthetic", "0.4"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "at most 1" in bad.stderr
    assert not (tmp_path / "bad").exists()
    run = tmp_path / "run"
    ok = subprocess.run([*cli, "--run", str(run), "--degrade", "0.5", "--synthetic", "0.25"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((run / "config.json").read_text())["degradation"] == {"degrade": 0.5, "synthetic": 0.25}
