"""Rate–distortion evaluation: classical codecs, BD-rate / BD-PSNR, and ``compress eval`` end to end."""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compress import classical
from compress.evaluate import add_eval_arguments, resolve_codecs, run_eval
from shared.data.images import load_image
from shared.errors import UserError
from shared.metrics.image import psnr
from shared.metrics.perceptual import TEAM_FILE
from shared.metrics.rate_distortion import bd_psnr, bd_rate
from tests.conftest import shared_data


def _photo_like(h: int = 144, w: int = 176, seed: int = 0) -> torch.Tensor:
    """A smooth random image with some fine texture, (3, h, w) in [0, 1] on the 8-bit grid (large
    enough that JPEG 2000's lowest target, 0.0625 bpp, is still above its container's overhead)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 10, 12, generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)[0]
    img = img + 0.015 * torch.randn(3, h, w, generator=g)
    return img.clamp(0, 1).mul(255).round().div(255)


# --- classical codecs -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", classical.NAMES)
def test_classical_codec_round_trip_and_rate_rises_with_quality(name):
    reason = classical.unavailable_reason(name)
    if reason:
        pytest.skip(reason)
    codec = classical.classical_codec(name)
    assert len(codec.qualities) >= 6
    x = _photo_like()
    sizes, scores = [], []
    for q in codec.qualities:
        data = codec.encode(x, q)
        y = codec.decode(data)
        assert y.shape == x.shape and y.dtype == torch.float32 and 0 <= float(y.min()) and float(y.max()) <= 1
        sizes.append(len(data))
        scores.append(float(psnr(x[None], y[None])))
    assert all(a < b for a, b in zip(sizes, sizes[1:])), f"{name}: sizes {sizes} do not rise with quality"
    assert scores[-1] > scores[0] + 3 and scores[-1] > 30, f"{name}: PSNR {scores}"


def test_grey_image_round_trips_through_a_classical_codec():
    codec = classical.classical_codec("jpeg")
    x = _photo_like()[:1]
    y = codec.decode(codec.encode(x, 90), mode="L")
    assert y.shape == x.shape and float(psnr(x[None], y[None])) > 30


def test_missing_libraries_are_skipped_with_a_reason(monkeypatch):
    real_check = classical.features.check
    monkeypatch.setattr(classical.features, "check", lambda f: False if f == "avif" else real_check(f))
    monkeypatch.setitem(sys.modules, "pillow_jxl", None)  # makes `import pillow_jxl` fail
    usable, skipped = classical.available_codecs(["jpeg", "avif", "jxl"])
    assert [c.name for c in usable] == ["jpeg"]
    assert set(skipped) == {"avif", "jxl"} and "avif" in skipped["avif"] and "pip install pillow-jxl-plugin" in skipped["jxl"]
    codecs, skipped = resolve_codecs(["jpeg", "avif"])
    assert [c.name for c in codecs] == ["jpeg"] and "avif" in skipped
    with pytest.raises(UserError, match="unavailable"):
        classical.classical_codec("avif")


def test_unknown_codec_and_bad_quality_option_are_clear_errors():
    with pytest.raises(UserError, match="unknown codec"):
        resolve_codecs(["jpeg", "png"])
    parser = add_eval_arguments(argparse.ArgumentParser())
    with pytest.raises(SystemExit):
        parser.parse_args(["-o", "x", "--quality", "jpeg:10,20"])
    assert dict(parser.parse_args(["-o", "x", "--quality", "jpeg=10,20"]).qualities) == {"jpeg": (10.0, 20.0)}


def test_eval_options_read_as_typed_and_bad_values_are_one_line():
    from compress.options import EvalOptions, options_from_args

    parser = add_eval_arguments(argparse.ArgumentParser())
    ns = parser.parse_args(["-o", "x", "--codecs", "ours,jpeg", "avif", "--model", "a", "--model", "b/c", "--quality", "jpeg=10,20", "--threads", "0"])
    options = options_from_args(EvalOptions, ns)
    assert options.codecs == ("ours", "jpeg", "avif") and options.models == ("a", "b/c") and options.threads == 0
    assert options.qualities == {"jpeg": (10.0, 20.0)} and EvalOptions().threads == 1  # single-threaded timings by default
    for flags, message in ((["--limit", "0"], "limit must be at least 1"), (["--refine", "-2"], "refine takes"), (["--threads", "-1"], "threads must be 0")):
        with pytest.raises(UserError, match=message):
            options_from_args(EvalOptions, parser.parse_args(["-o", "x", *flags]))


# --- Bjøntegaard deltas -----------------------------------------------------------------------------

RATES = np.array([0.1, 0.2, 0.4, 0.7, 1.1, 1.8, 2.6])


def _concave_psnr(rate):
    return 24 + 9 * np.log(rate + 0.05) - 0.8 * np.log(rate + 0.05) ** 2


def test_rate_scaled_by_a_constant_gives_that_bd_rate():
    quality = _concave_psnr(RATES)
    assert bd_rate(RATES, quality, 0.8 * RATES, quality) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(RATES, quality, 1.25 * RATES, quality) == pytest.approx(25.0, abs=1e-9)
    assert bd_rate(RATES, quality, RATES, quality) == pytest.approx(0.0, abs=1e-12)


def test_bd_psnr_and_bd_rate_on_log_linear_curves_sampled_apart():
    # PSNR = a + b·ln R: a shift of d dB is BD-PSNR d and BD-rate exp(-d/b) - 1, whatever the samples
    b, d = 4.0, 1.5
    test_rates = np.array([0.15, 0.33, 0.5, 0.9, 1.6, 3.0])
    anchor_q, test_q = 30 + b * np.log(RATES), 30 + d + b * np.log(test_rates)
    assert bd_psnr(RATES, anchor_q, test_rates, test_q) == pytest.approx(d, abs=1e-9)
    assert bd_rate(RATES, anchor_q, test_rates, test_q) == pytest.approx(100 * (math.exp(-d / b) - 1), abs=1e-9)
    # swapping the curves inverts the ratio: (1 + x)(1 + y) = 1
    there, back = bd_rate(RATES, anchor_q, test_rates, test_q), bd_rate(test_rates, test_q, RATES, anchor_q)
    assert (1 + there / 100) * (1 + back / 100) == pytest.approx(1.0, abs=1e-9)


def test_bd_rate_works_on_ms_ssim_db_and_unsorted_points():
    ms_db = 6 + 7 * np.log1p(RATES)  # MS-SSIM dB-like: rising, concave
    order = np.array([3, 0, 6, 2, 5, 1, 4])
    assert bd_rate(RATES[order], ms_db[order], 0.9 * RATES, ms_db) == pytest.approx(-10.0, abs=1e-9)


def test_bd_rate_refuses_disjoint_or_degenerate_curves():
    q = _concave_psnr(RATES)
    with pytest.raises(UserError, match="do not overlap"):
        bd_rate(RATES, q, RATES, q + 50)
    with pytest.raises(UserError, match="repeats"):
        bd_rate(RATES, np.r_[q[:-1], q[-2]], RATES, q)
    with pytest.raises(UserError, match="rates ≤ 0"):
        bd_rate(np.r_[0.0, RATES[1:]], q, RATES, q)


# --- compress eval end to end -----------------------------------------------------------------------

@pytest.fixture
def small_kodak(tmp_path) -> Path:
    """Two Kodak images downscaled by 3 (256×171 / 171×256): over MS-SSIM's 160-pixel minimum."""
    kodak = shared_data("kodak")
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("kodim04.png", "kodim23.png"):  # one portrait, one landscape
        with Image.open(kodak / name) as im:
            im.convert("RGB").resize((im.width // 3, im.height // 3), Image.LANCZOS).save(folder / name)
    return folder


@pytest.fixture
def lpips_weights(small_kodak) -> Path:
    """The team's AlexNet file for LPIPS, beside the data folder, or skip saying why."""
    path = shared_data("kodak").parent.parent / "weights" / TEAM_FILE
    if not path.is_file():
        pytest.skip(f"needs {path} for LPIPS")
    return path


def test_eval_end_to_end_on_two_images(small_kodak, lpips_weights, tmp_path, capsys):
    names = [n for n in classical.NAMES if classical.unavailable_reason(n) is None]
    assert {"jpeg", "avif"} <= set(names)
    out = tmp_path / "out"
    ns = add_eval_arguments(argparse.ArgumentParser()).parse_args(
        ["--data", str(small_kodak), "--codecs", ",".join(names), "-o", str(out), "--lpips-weights", str(lpips_weights), "--no-progress", "--html", "1"])
    result = run_eval(ns)

    page = (out / "index.html").read_text()  # one image on the page: its original, ensō, JPEG and AVIF beside it
    assert out / "index.html" in result.files and ">1 of 2 (the first 1)<" in page
    first = sorted(small_kodak.iterdir())[0].stem
    assert sorted(f.name for f in (out / "images").iterdir()) == sorted(f"{first}{s}.png" for s in ("", "_avif", "_enso", "_jpeg"))
    for f in ("per_image.csv", "per_image.json", "points.csv", "points.json", "bd_rate.json", "bd_rate.md", "rd_psnr.png", "rd_ms_ssim_db.png", "rd_lpips.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    as_json = json.loads((out / "per_image.json").read_text())
    assert len(as_json) == len(rows) and all(float(r["bpp"]) == pytest.approx(j["bpp"]) for r, j in zip(rows, as_json))
    points = json.loads((out / "points.json").read_text())
    assert points["images"] == 2 and set(points["codecs"]) == set(names)
    assert len(rows) == 2 * sum(len(c["points"]) for c in points["codecs"].values())

    pixels = {p.name: load_image(p).shape[1] * load_image(p).shape[2] for p in small_kodak.iterdir()}
    for r in rows:
        assert float(r["bpp"]) == pytest.approx(8 * int(r["bytes"]) / pixels[r["image"]])
        assert 15 < float(r["psnr"]) < 60 and 3 < float(r["ms_ssim_db"]) < 40 and 0 <= float(r["lpips"]) < 1
    for name, entry in points["codecs"].items():
        pts = entry["points"]
        assert len(pts) >= 6
        bpp, quality, lp = [p["bpp"] for p in pts], [p["psnr"] for p in pts], [p["lpips"] for p in pts]
        assert bpp == sorted(bpp), name
        assert quality[-1] > quality[0] + 5 and lp[-1] < lp[0], name
        mean_bpp = np.mean([float(r["bpp"]) for r in rows if r["codec"] == name and float(r["quality"]) == pts[0]["quality"]])
        assert pts[0]["bpp"] == pytest.approx(mean_bpp)

    bd = json.loads((out / "bd_rate.json").read_text())
    assert set(bd) == {"jpeg", "avif"} and set(bd["jpeg"]) == set(names) - {"jpeg"}
    assert bd["jpeg"]["avif"]["bd_rate_psnr"] < 0 < bd["avif"]["jpeg"]["bd_rate_psnr"]  # AVIF beats JPEG
    assert bd["jpeg"]["avif"]["bd_psnr"] > 0
    printed = capsys.readouterr().out
    assert "| codec |" in printed and "| avif |" in printed and result.table in printed


def test_ours_runs_through_the_codec_interface(tmp_path, monkeypatch):
    """A stand-in ``compress.codec`` (JPEG behind the ``Codec.load / encode / decode`` interface)."""
    jpeg = classical.classical_codec("jpeg")
    seen = []

    class FakeCodec:
        @classmethod
        def load(cls, name_or_path):
            seen.append(name_or_path)
            return cls()

        def encode(self, img, quality, refine=0):
            assert 0 <= quality <= 1 and refine == 0
            return jpeg.encode(img, 5 + 90 * quality)

        def decode(self, data):
            return jpeg.decode(data)

    monkeypatch.setitem(sys.modules, "compress.codec", types.SimpleNamespace(Codec=FakeCodec))
    codecs, skipped = resolve_codecs(["ours"], model="my_run")
    assert skipped == {} and seen == ["my_run"] and len(codecs[0].qualities) >= 6
    ours = codecs[0]
    x = _photo_like()
    sizes = [len(ours.encode(x, q)) for q in ours.qualities]
    assert sizes == sorted(sizes) and ours.decode(ours.encode(x, 1.0)).shape == x.shape
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        resolve_codecs(["ours"], model="my_run", qualities={"ours": [0.5, 2.0]})
    seen.clear()
    codecs, _ = resolve_codecs(["ours", "jpeg"], model=["mean_scale", "runs/mean_scale_msssim"])
    assert [c.name for c in codecs] == ["ours:mean_scale", "ours:mean_scale_msssim", "jpeg"]
    assert seen == ["mean_scale", "runs/mean_scale_msssim"]
    with pytest.raises(UserError, match="share a name"):
        resolve_codecs(["ours"], model=["a/run", "b/run"])


def test_ours_is_skipped_when_the_codec_api_is_absent(monkeypatch):
    monkeypatch.setitem(sys.modules, "compress.codec", None)
    codecs, skipped = resolve_codecs(["ours", "jpeg"])
    assert [c.name for c in codecs] == ["jpeg"] and "compress.codec" in skipped["ours"]


def test_points_average_ms_ssim_over_the_images_that_have_it():
    """An image too small for MS-SSIM (NaN) leaves that measure's mean to the others, not NaN."""
    from compress.evaluate import RDCodec, average_points

    c = RDCodec("x", (0.5,), lambda img, q: b"", lambda data: None)
    row = {"codec": "x", "quality": 0.5, "bpp": 1.0, "psnr": 30.0, "lpips": 0.1, "bytes": 10, "encode_s": 0.1, "decode_s": 0.1}
    rows = [row | {"ms_ssim_db": 15.0, "psnr": 32.0}, row | {"ms_ssim_db": math.nan}]
    point = average_points(rows, [c])["x"][0]
    assert point["ms_ssim_db"] == 15.0 and point["psnr"] == 31.0 and point["images"] == 2
    identical = average_points([row | {"ms_ssim_db": math.inf, "psnr": math.inf}, row | {"ms_ssim_db": 15.0}], [c])["x"][0]
    assert identical["psnr"] == math.inf and identical["ms_ssim_db"] == math.inf  # identical images count (+inf)
    only_small = average_points([row | {"ms_ssim_db": math.nan}], [c])["x"][0]
    assert math.isnan(only_small["ms_ssim_db"])
