"""ONNX export: ``compress export --onnx`` (g_a, g_s) and ``translate export --onnx`` (generators), run
in onnxruntime against PyTorch on an odd-sized image (3×67×91, padded as the codec / generator needs)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install 'enso[onnx]'")
pytest.importorskip("onnx", reason="needs the onnx extra: pip install 'enso[onnx]'")

from compress.cli import main as compress_main  # noqa: E402
from compress.codec import Codec, weights_folder  # noqa: E402
from compress.container import parse, quality_code  # noqa: E402
from shared import registry  # noqa: E402
from shared.checkpoint import export_weights, load_exported  # noqa: E402
from shared.errors import UserError  # noqa: E402
from shared.onnx_export import run_onnx  # noqa: E402
from translate.apply import apply_generator, load_translator, reflect_pad_to  # noqa: E402
from translate.cli import main as translate_main  # noqa: E402
from translate.models.translator import to_signed, to_unit  # noqa: E402

H, W = 67, 91  # odd on purpose: the codec pads it to 128×128, the generators to 68×92


def photo_like(h: int = H, w: int = W, seed: int = 0) -> torch.Tensor:
    """A smooth random RGB image (3, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)[0].clamp(0, 1)


def max_diff(a, b) -> float:
    a, b = (v.detach().numpy() if torch.is_tensor(v) else v for v in (a, b))
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def tiny_codec_folder(tmp_path):
    torch.manual_seed(0)
    model = registry.build("mean_scale", {"N": 16, "M": 24, "lambdas": (0.002, 0.02, 0.2)})
    model.update(force=True)
    return export_weights(model.eval(), tmp_path / "codec").parent


def check_codec_onnx(codec: Codec, out, quality: float = 0.6) -> None:
    """The ONNX g_a gives Codec's latent of the padded odd-sized image, and the ONNX g_s decodes the
    file's latent to Codec.decode's image (up to 8-bit rounding at boundaries)."""
    img = photo_like()
    code = quality_code(quality)
    q = torch.tensor([code / 65535.0])
    padded = Codec._padded(img)
    assert padded.shape == (1, 3, 128, 128)
    (y_onnx,) = run_onnx(out / "g_a.onnx", {"image": padded, "quality": q})
    gain, _ = codec._gains(code)
    y_torch = codec.analyse(img) * gain
    d = max_diff(y_onnx, y_torch)
    assert d < 1e-3, f"g_a: onnxruntime and PyTorch differ by {d:.3g} (max abs) on a 3×{H}×{W} image padded to 128×128"

    data = codec.encode(img, quality)
    header, sections = parse(data)
    y_hat = codec.model.decompress_latent(sections[: codec.model.sections], (128 // 16, 128 // 16))
    (x_onnx,) = run_onnx(out / "g_s.onnx", {"y_hat": y_hat, "quality": torch.tensor([header.quality_code / 65535.0])})
    _, inv_gain = codec._gains(header.quality_code)
    with torch.no_grad():
        x_torch = codec.model.g_s(y_hat * inv_gain).clamp(0, 1)
    d = max_diff(x_onnx, x_torch)
    assert d < 1e-3, f"g_s: onnxruntime and PyTorch differ by {d:.3g} (max abs) on the latent of a 3×{H}×{W} image"
    decoded = codec.decode(data)
    shown = torch.from_numpy(x_onnx[0, :, :H, :W]).mul(255).round().div(255)
    off = (shown - decoded).abs()
    assert off.max() <= 1 / 255 + 1e-6 and (off > 0).float().mean() < 0.01, \
        f"ONNX g_s's image differs from Codec.decode's by up to {off.max() * 255:.0f}/255 on {(off > 0).float().mean():.1%} of the values"


def test_compress_export_onnx_matches_pytorch_on_an_odd_sized_image(tmp_path, capsys):
    folder = tiny_codec_folder(tmp_path)
    out = tmp_path / "onnx"
    assert compress_main(["export", str(folder), "--onnx", "-o", str(out)]) == 0
    assert "onnxruntime matches PyTorch" in capsys.readouterr().out
    info = json.loads((out / "onnx.json").read_text())
    assert info["model"] == "mean_scale" and info["M"] == 24 and info["pad_to"] == 64
    assert set(info["networks"]) == {"g_a.onnx", "g_s.onnx"}
    check_codec_onnx(Codec(load_exported(folder), fast=False), out)  # fp32 transforms: the ONNX files' arithmetic


def test_compress_export_onnx_is_dynamic_in_batch_and_quality(tmp_path):
    folder = tiny_codec_folder(tmp_path)
    out = tmp_path / "onnx"
    compress_main(["export", str(folder), "--onnx", "-o", str(out)])
    model = load_exported(folder).eval()
    x = torch.rand(3, 3, 48, 80, generator=torch.Generator().manual_seed(1))
    q = torch.tensor([0.0, 0.5, 1.0])
    (y,) = run_onnx(out / "g_a.onnx", {"image": x, "quality": q})
    gain, inv_gain = model.gains(q)
    with torch.no_grad():
        d = max_diff(y, model.g_a(x) * gain)
        assert y.shape == (3, 24, 3, 5) and d < 1e-3, f"batch of 3 at 48×80: shape {y.shape}, max abs difference {d:.3g}"
        (x_hat,) = run_onnx(out / "g_s.onnx", {"y_hat": np.round(y), "quality": q})
        d = max_diff(x_hat, model.g_s(torch.from_numpy(np.round(y)) * inv_gain).clamp(0, 1))
    assert x_hat.shape == (3, 3, 48, 80) and d < 1e-3, f"g_s on a batch of 3: max abs difference {d:.3g}"
    assert max_diff(y[0], y[2]) > 1e-2, "the quality input has no effect on the latent"


def test_compress_export_onnx_refuses_to_overwrite_and_a_base(tmp_path):
    folder = tiny_codec_folder(tmp_path)
    out = tmp_path / "onnx"
    compress_main(["export", str(folder), "--onnx", "-o", str(out)])
    before = (out / "g_a.onnx").read_bytes()
    with pytest.raises(UserError, match="exists; pass --force"):
        compress_main(["export", str(folder), "--onnx", "-o", str(out)])
    with pytest.raises(UserError, match="--base"):
        compress_main(["export", str(folder), "--onnx", "-o", str(tmp_path / "other"), "--base", "mean_scale"])
    assert (out / "g_a.onnx").read_bytes() == before and not (tmp_path / "other").exists()
    assert sorted(p.name for p in out.iterdir()) == ["g_a.onnx", "g_s.onnx", "onnx.json"]  # no temporary files left


def test_shipped_codec_exports_to_onnx(tmp_path):
    out = tmp_path / "onnx"
    assert compress_main(["export", "mean_scale_cc", "--onnx", "-o", str(out)]) == 0
    check_codec_onnx(Codec(load_exported(weights_folder("mean_scale_cc")), fast=False), out)


def test_translate_export_onnx_matches_pytorch_on_an_odd_sized_image(tmp_path):
    torch.manual_seed(0)
    model = registry.build("cyclegan", {"generator": "resnet", "n_blocks": 2, "ngf": 8, "ndf": 8, "n_layers_d": 2}).eval()
    export_weights(model, tmp_path / "h2z", parts=model.export_parts(), half=True)
    out = tmp_path / "onnx"
    assert translate_main(["export", str(tmp_path / "h2z"), "--onnx", "-o", str(out)]) == 0
    info = json.loads((out / "onnx.json").read_text())
    assert info["stride"] == 4 and sorted(info["networks"]) == ["a2b.onnx", "b2a.onnx"]
    translator = load_translator(tmp_path / "h2z")
    img = photo_like()
    padded = reflect_pad_to(img[None], 4)
    assert padded.shape == (1, 3, 68, 92)
    for direction, file in (("ab", "a2b.onnx"), ("ba", "b2a.onnx")):
        g = translator.generator(direction)
        (y,) = run_onnx(out / file, {"image": padded})
        with torch.no_grad():
            d = max_diff(y, to_unit(g(to_signed(padded))))
        assert d < 1e-3, f"{file}: onnxruntime and PyTorch differ by {d:.3g} (max abs) on a 3×{H}×{W} image padded to 68×92"
        d = max_diff(y[0, :, :H, :W], apply_generator(g, img))
        assert d < 1e-3, f"{file} cropped back differs from apply_generator by {d:.3g}"
