"""The content benchmark (compress.content_benchmark) and the per-image BD-rates (compress.per_image)."""
from __future__ import annotations

import argparse
import csv
import json
import math

import pytest
from PIL import Image

from compress.content_benchmark import build_benchmark, content_types
from compress.evaluate import add_eval_arguments, bd_table, run_eval
from compress.per_image import markdown, per_image_bd_rates, summarise
from scripts.check_content_targets import bytes_at, pareto
from scripts.check_content_targets import main as check_targets
from scripts.make_content_benchmark import main as make_benchmark
from shared.data.images import load_image
from shared.errors import UserError
from shared.metrics.image import psnr
from shared.metrics.rate_distortion import bd_rate, efficient_points
from tests.test_rd_eval import TEAM_FILE, shared_data


def test_the_benchmark_is_deterministic_and_small(tmp_path):
    a, b = build_benchmark(tmp_path / "a"), build_benchmark(tmp_path / "b")
    assert [p.name for p in a] == [p.name for p in b] and len(a) >= 18
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a, b))
    types = content_types(tmp_path / "a")
    assert set(types) == {p.name for p in a} and all(p.name.startswith(types[p.name] + "__") for p in a)
    assert {"noise", "grain", "dither", "posterise", "text", "plot", "line-art", "flat", "gradient", "exposure", "mixed"} <= set(types.values())
    for p in a:
        with Image.open(p) as im:
            assert im.mode == "RGB" and 256 <= min(im.size) and max(im.size) <= 512, p.name
    with Image.open(tmp_path / "a" / "mixed__photo-over-dither.png") as im:  # the photo above the dithered flat area
        assert im.size == (256, 384)
    assert content_types(tmp_path) is None


def test_the_script_refuses_to_overwrite_without_force(tmp_path, capsys):
    assert make_benchmark(["-o", str(tmp_path)]) == 0
    with pytest.raises(UserError, match="already holds a content benchmark; pass --force"):
        make_benchmark(["-o", str(tmp_path)])
    assert make_benchmark(["-o", str(tmp_path), "--force"]) == 0


def rows_of(curves):
    return [{"image": i, "codec": c, "bpp": r, "psnr": q} for (i, c), pts in curves.items() for r, q in pts]


def test_per_image_bd_rates_and_their_distribution_per_type():
    anchor = [(0.5, 30.0), (1.0, 33.0), (2.0, 36.0)]
    curves = {("a.png", "jpeg"): anchor, ("b.png", "jpeg"): anchor, ("c.png", "jpeg"): anchor,
              ("a.png", "ours"): [(r * 0.8, q) for r, q in anchor], ("b.png", "ours"): [(r * 1.5, q) for r, q in anchor],
              ("c.png", "ours"): [(r * 2.0, q) for r, q in anchor]}
    entries = per_image_bd_rates(rows_of(curves), ["ours", "jpeg"])
    got = {e["image"]: e["bd_rate_psnr"] for e in entries}
    assert got == pytest.approx({"a.png": -20.0, "b.png": 50.0, "c.png": 100.0})
    s = summarise(entries, {"a.png": "photo", "b.png": "noise", "c.png": "noise"})["jpeg"]["ours"]
    assert s["all"]["worst"] == pytest.approx(100.0) and s["all"]["worst_image"] == "c.png"
    assert s["all"]["median"] == pytest.approx(50.0) and s["all"]["mean"] == pytest.approx(130 / 3)
    assert s["noise"]["images"] == 2 and s["noise"]["median"] == pytest.approx(75.0) and s["photo"]["worst"] == pytest.approx(-20.0)


ANCHOR = [(0.5, 30.0), (1.0, 33.0), (2.0, 36.0)]


def bd_of(curves, image="a.png"):
    """The (BD-rate, note) of ours against JPEG on ``image`` from per_image_bd_rates."""
    entries = [e for e in per_image_bd_rates(rows_of(curves), ["ours"]) if e["anchor"] == "jpeg" and e["image"] == image]
    assert len(entries) == 1
    return entries[0]["bd_rate_psnr"], entries[0]["note"]


def test_efficient_points_keep_each_point_better_than_every_cheaper_one():
    rates, psnrs = efficient_points([0.8, 0.4, 0.4, 0.6, 1.0, 0.8, 1.6, 1.0], [33.0, 30.0, 30.0, 29.5, 32.9, 33.0, 36.0, 33.5])
    assert rates.tolist() == [0.4, 0.8, 1.0, 1.6] and psnrs.tolist() == [30.0, 33.0, 33.5, 36.0]  # at rate 1.0 the better point stays
    assert [a.tolist() for a in efficient_points([1.0, 2.0], [30.0, math.nan])] == [[1.0], [30.0]]
    with pytest.raises(UserError, match="as many rates as qualities"):
        efficient_points([1.0, 2.0], [30.0])


def test_a_curve_that_repeats_points_gets_the_bd_rate_of_its_distinct_points():
    # --safeguard: qualities 0 and 0.2, and 0.4 and 0.6, stored the same file
    ours = [(0.4, 30.0), (0.4, 30.0), (0.8, 33.0), (0.8, 33.0), (1.6, 36.0)]
    with pytest.raises(UserError, match="repeats"):
        bd_rate(*zip(*ANCHOR), *zip(*ours))  # what made the entry n/a
    value, note = bd_of({("a.png", "jpeg"): ANCHOR, ("a.png", "ours"): ours})
    assert note is None
    assert value == pytest.approx(bd_rate([0.5, 1.0, 2.0], [30.0, 33.0, 36.0], [0.4, 0.8, 1.6], [30.0, 33.0, 36.0]))
    assert value == pytest.approx(-20.0)


def test_a_point_that_costs_more_for_less_psnr_is_left_out_of_the_bd_rate():
    ours = [(0.4, 30.0), (0.6, 29.5), (0.8, 33.0), (1.0, 32.9), (1.6, 36.0)]  # 0.6 and 1.0 bpp buy nothing
    value, note = bd_of({("a.png", "jpeg"): ANCHOR + [(1.5, 32.0)], ("a.png", "ours"): ours})  # nor does JPEG's 1.5 bpp
    expected = bd_rate([0.5, 1.0, 2.0], [30.0, 33.0, 36.0], [0.4, 0.8, 1.6], [30.0, 33.0, 36.0])
    assert note is None and value == pytest.approx(expected)
    assert bd_rate(*zip(*ANCHOR), *zip(*ours)) != pytest.approx(expected)  # the raw curve gives another number


def test_an_image_without_a_bd_rate_says_why():
    curves = {("a.png", "jpeg"): ANCHOR, ("a.png", "ours"): [(0.3, 31.0)] * 6,  # every quality stored one file
              ("b.png", "jpeg"): ANCHOR, ("b.png", "ours"): [(0.2, 8.0), (0.3, 9.0)],  # far below JPEG's PSNRs
              ("c.png", "jpeg"): ANCHOR, ("c.png", "ours"): [(0.3, 31.0)] * 3 + [(0.7, 34.0)] * 3}  # two distinct points: enough
    assert bd_of(curves, "a.png") == (None, "too few distinct points (ours: 1)")
    value, note = bd_of(curves, "b.png")
    assert value is None and note.startswith("no PSNR overlap")
    value, note = bd_of(curves, "c.png")
    assert note is None and value == pytest.approx(bd_rate(*zip(*ANCHOR), [0.3, 0.7], [31.0, 34.0]))
    summary = summarise(per_image_bd_rates(rows_of(curves), ["ours"]))
    assert set(summary["jpeg"]["ours"]["all"]["undefined"]) == {"a.png", "b.png"}
    text = markdown(summary)
    assert "No BD-rate of ours against JPEG on 2 images: a.png: too few distinct points (ours: 1); b.png: no PSNR overlap" in text
    only_a = markdown(summarise(per_image_bd_rates(rows_of({k: v for k, v in curves.items() if k[0] == "a.png"}), ["ours"])))
    assert "| ours | all | 1 | n/a | n/a | n/a | n/a |" in only_a and "nan" not in only_a  # no image with a value


def test_the_mean_curve_bd_rate_uses_the_efficient_points_too():
    def points(curve):
        return [{"bpp": r, "psnr": q, "ms_ssim_db": q / 3} for r, q in curve]

    table = bd_table({"jpeg": points(ANCHOR), "ours": points([(0.4, 30.0), (0.4, 30.0), (0.8, 33.0), (1.6, 36.0)])})
    assert table["jpeg"]["ours"]["bd_rate_psnr"] == pytest.approx(-20.0)
    assert table["jpeg"]["ours"]["bd_rate_ms_ssim_db"] == pytest.approx(-20.0)
    assert table["jpeg"]["ours"]["bd_psnr"] is not None


def test_eval_reports_per_image_bd_rates_by_content_type(tmp_path, capsys):
    data = tmp_path / "bench"
    build_benchmark(data)
    keep = ["noise__sigma10.png", "text__page.png"]
    for p in data.glob("*.png"):
        if p.name not in keep:
            p.unlink()
    lpips = shared_data("kodak").parent.parent / "weights" / TEAM_FILE
    if not lpips.is_file():
        pytest.skip(f"needs {lpips} for LPIPS")
    ns = add_eval_arguments(argparse.ArgumentParser()).parse_args(
        ["--data", str(data), "--codecs", "jpeg,avif,webp", "-o", str(tmp_path / "out"), "--lpips-weights", str(lpips), "--no-progress"])
    run_eval(ns)
    out = json.loads((tmp_path / "out" / "per_image_bd.json").read_text())
    kinds = set(out["summary"]["jpeg"]["webp"])
    assert kinds == {"all", "noise", "text"} and out["summary"]["avif"]["jpeg"]["all"]["images"] == 2
    assert (tmp_path / "out" / "per_image_bd.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "Per-image BD-rate (PSNR) against JPEG" in printed and "| webp | noise | 1 |" in printed


def test_the_anchor_size_at_a_psnr_follows_its_smallest_files():
    sizes, values = pareto([(300, 30.0), (200, 28.0), (250, 27.0), (400, 33.0), (500, 32.0)])
    assert list(sizes) == [200, 300, 400] and list(values) == [28.0, 30.0, 33.0]  # larger files that do not improve are dropped
    front = (sizes, values)
    assert bytes_at(front, 30.0) == pytest.approx(300) and bytes_at(front, 29.0) == pytest.approx(math.sqrt(200 * 300))
    assert bytes_at(front, 20.0) == pytest.approx(200) and math.isnan(bytes_at(front, 40.0))


def test_the_target_check_flags_a_file_much_larger_than_avif_and_jpeg(tmp_path, capsys):
    from compress import classical

    if any(classical.unavailable_reason(n) for n in ("jpeg", "avif")):
        pytest.skip("needs Pillow with JPEG and AVIF")
    build_benchmark(tmp_path / "bench")
    data = tmp_path / "data"
    data.mkdir()
    with Image.open(tmp_path / "bench" / "noise__sigma10.png") as im:
        im.crop((0, 0, 48, 48)).save(data / "a.png")
    jpeg, x = classical.classical_codec("jpeg"), load_image(data / "a.png", "RGB")
    small = jpeg.encode(x, 50)
    value = float(psnr(x[None], jpeg.decode(small)[None]))
    out = tmp_path / "eval"
    out.mkdir()

    def check(size: int) -> int:
        with open(out / "per_image.csv", "w", newline="") as f:
            w = csv.DictWriter(f, ["image", "codec", "quality", "bytes", "psnr"])
            w.writeheader()
            w.writerow({"image": "a.png", "codec": "ours", "quality": 0.5, "bytes": size, "psnr": value})
        return check_targets(["--eval", str(out), "--data", str(data), "--json", str(out / "t.json")])

    assert check(len(small)) == 0  # JPEG's own file: 1 × JPEG's size
    assert json.loads((out / "t.json").read_text())[0]["x_jpeg"] == pytest.approx(1.0, abs=0.1)
    assert check(10 * len(small)) == 1
    assert "1 of 1 files over 1.2 × JPEG or 1.5 × AVIF" in capsys.readouterr().out
    (out / "per_image.csv").write_text("image,codec,quality,bytes,psnr\n")
    with pytest.raises(UserError, match="no rows of codec ours"):
        check_targets(["--eval", str(out), "--data", str(data)])
