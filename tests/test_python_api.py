"""The Python API: the README's "From Python" blocks run exactly as written, and the API's input
types, outputs and errors (compress.load, translate.load, shared.build/Trainer/load)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import compress
import shared
import translate
from compress.codec import Codec
from shared.data.images import image_tensor, load_image, sample_photo, to_pil
from translate.apply import apply_generator, load_translator

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## From Python"


def section() -> tuple[Path, str]:
    """The "From Python" section: README.md's once it is there, else the draft in docs/."""
    for path in (ROOT / "README.md", ROOT / "docs" / "from_python_section.md"):
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        lines = text.splitlines()
        if HEADING in lines:
            start = lines.index(HEADING) + 1
            end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
            return path, "\n".join(lines[start:end])
    pytest.fail(f"neither README.md nor docs/from_python_section.md has a {HEADING!r} section")


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", section()[1], flags=re.S | re.M)


def test_the_section_shows_compress_translate_and_shared_in_ten_lines_each():
    found = blocks()
    assert [next(m for m in ("compress", "translate", "shared") if f"import {m}\n" in b) for b in found] == ["compress", "translate", "shared"]
    for b in found:
        assert len([line for line in b.splitlines() if line.strip()]) <= 10, b


@pytest.mark.parametrize("index", range(3), ids=["compress", "translate", "shared"])
def test_readme_block_runs_as_written(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = blocks()[index]
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, f"{section()[0].name} block {index + 1}", "exec"), namespace)
    written = sorted(p.name for p in tmp_path.iterdir())
    if index == 0:  # the codec's bytes are a file that decodes to the photo's size
        enso = [p for p in tmp_path.iterdir() if p.suffix == ".enso"]
        assert enso, written
        assert compress.load("mean_scale_cc").decode(enso[0].read_bytes()).size == Image.open(sample_photo()).reduce(4).size
        assert "bpp" in capsys.readouterr().out
    elif index == 1:  # a translated image was written
        pngs = [p for p in tmp_path.iterdir() if p.suffix == ".png"]
        assert pngs and Image.open(pngs[0]).size == Image.open(sample_photo()).reduce(4).size, written
    else:  # a run folder with its export, which loads
        runs = [p for p in tmp_path.iterdir() if (p / "export" / "model.json").is_file()]
        assert runs, written
        assert shared.load(runs[0]).registry_name == "vae"


# -- the one input conversion -------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A 64×75 RGB photo."""
    return Image.open(sample_photo()).convert("RGB").reduce(8)


def test_every_input_type_gives_the_same_tensor(photo, tmp_path):
    arr = np.asarray(photo)
    path = tmp_path / "photo.png"
    photo.save(path)
    expected = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255
    inputs = [photo, arr, arr.astype(np.float64) / 255, arr.astype(np.float32) / 255, expected.clone(),
              torch.from_numpy(arr.copy()).permute(2, 0, 1), str(path), path]
    for x in inputs:
        t = image_tensor(x)
        assert t.dtype == torch.float32 and t.shape == (3, 75, 64), type(x)
        assert torch.allclose(t, expected, atol=1e-6), type(x)


def test_channels_are_kept_or_made_rgb(photo):
    grey, rgba = photo.convert("L"), photo.convert("RGBA")
    assert image_tensor(grey).shape[0] == 1 and image_tensor(np.asarray(grey)).shape[0] == 1
    assert image_tensor(rgba).shape[0] == 4 and image_tensor(np.asarray(rgba)).shape[0] == 4
    g = image_tensor(grey, rgb=True)
    assert g.shape[0] == 3 and torch.equal(g[0], g[2])
    assert torch.equal(image_tensor(rgba, rgb=True), image_tensor(photo))
    four, one = torch.rand(4, 5, 6), torch.rand(1, 5, 6)
    assert torch.equal(image_tensor(four, rgb=True), four[:3])
    assert torch.equal(image_tensor(one, rgb=True), one.expand(3, -1, -1))


def test_the_result_is_a_copy_and_to_pil_inverts_it(photo):
    arr = np.asarray(photo).copy()
    t = image_tensor(arr)
    t.zero_()
    assert arr.any()
    src = torch.rand(3, 8, 9)
    image_tensor(src).zero_()
    assert src.any()
    assert np.array_equal(np.asarray(to_pil(image_tensor(photo))), np.asarray(photo))
    assert to_pil(torch.rand(1, 4, 4)).mode == "L" and to_pil(torch.rand(4, 4, 4)).mode == "RGBA"


@pytest.mark.parametrize(
    "bad,error,message",
    [
        (np.zeros((8, 8, 2), np.uint8), ValueError, r"\(H, W\) or \(H, W, C\) with C = 1, 3 or 4, not \(8, 8, 2\)"),
        (np.zeros((2, 8, 8, 3), np.uint8), ValueError, "C = 1, 3 or 4"),
        (np.zeros((8, 8, 3), np.int32), ValueError, "must be uint8 or float in \\[0, 1\\], not int32"),
        (np.zeros((8, 8, 3), np.uint16), ValueError, "not uint16"),
        (np.zeros((8, 8, 3), bool), ValueError, "not bool"),
        (np.full((8, 8, 3), 255.0), ValueError, r"values in \[0, 1\], not \[255, 255\]; scale it"),
        (np.full((8, 8, 3), np.nan, np.float32), ValueError, r"values in \[0, 1\]"),
        (np.zeros((0, 8, 3), np.uint8), ValueError, "empty"),
        (torch.rand(8, 8, 3), ValueError, r"\(C, H, W\).*use image.permute\(2, 0, 1\)"),
        (torch.rand(1, 3, 8, 8), ValueError, r"not a batch \(1, 3, 8, 8\); pass image\[0\]"),
        (torch.rand(2, 8, 8), ValueError, "C = 1, 3 or 4, not \\(2, 8, 8\\)"),
        (torch.rand(3, 8, 8) - 0.5, ValueError, r"values in \[0, 1\]"),
        (torch.zeros(3, 8, 8, dtype=torch.int64), ValueError, "not int64"),
        ([[0, 1], [1, 0]], TypeError, "type list; give a path, a PIL image, a NumPy array or a tensor"),
    ],
)
def test_wrong_inputs_are_clear_errors(bad, error, message):
    with pytest.raises(error, match=message):
        image_tensor(bad)


# -- compress -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def codec() -> compress.ImageCodec:
    return compress.load("mean_scale_cc")


def test_encode_takes_every_input_type_and_writes_the_commands_bytes(codec, photo, tmp_path):
    path = tmp_path / "photo.png"
    photo.save(path)
    command = Codec.load("mean_scale_cc").encode(load_image(path, "auto"), 0.5)  # what `compress encode` writes
    arr = np.asarray(photo)
    for x in (photo, arr, arr / 255.0, torch.from_numpy(arr.copy()).permute(2, 0, 1) / 255, path):
        assert codec.encode(x, quality=0.5) == command, type(x)
    assert codec.encode(photo) == command  # quality 0.5 is the default, as on the command line
    decoded = codec.decode(command)
    assert isinstance(decoded, Image.Image) and decoded.mode == "RGB" and decoded.size == photo.size
    assert torch.equal(codec.decode_tensor(command), image_tensor(decoded))


def test_target_bpp_and_refine_as_on_the_command_line(codec, photo):
    photo = photo.crop((0, 0, 64, 64))  # one 64×64 block: a dozen trial codings stay quick
    pixels = photo.width * photo.height
    small = codec.encode(photo, target_bpp=2.0)
    assert 1.5 < len(small) * 8 / pixels <= 2.0
    assert small == codec.codec.encode_to_bpp(image_tensor(photo), 2.0)
    assert codec.encode(photo, quality=0.5, refine=2) == codec.codec.encode(image_tensor(photo), 0.5, refine=2)


def test_grey_and_rgba_round_trip_their_mode(codec, photo):
    assert codec.decode(codec.encode(photo.convert("L"))).mode == "L"
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    back = codec.decode(codec.encode(rgba))
    assert back.mode == "RGBA" and np.array_equal(np.asarray(back)[..., 3], np.asarray(rgba)[..., 3])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"quality": 0.5, "target_bpp": 0.3}, "quality or target_bpp, not both"),
        ({"quality": 1.5}, r"quality must be in \[0, 1\], not 1.5"),
        ({"target_bpp": 0}, "target_bpp must be a positive number"),
        ({"target_bpp": float("nan")}, "target_bpp must be a positive number"),
        ({"refine": -1}, r"refine takes a number of steps \(0 or more\), not -1"),
        ({"refine": 2.5}, "refine takes a number of steps"),
    ],
)
def test_encode_options_are_checked(codec, kwargs, message):
    with pytest.raises(ValueError, match=message):
        codec.encode(np.zeros((8, 8, 3), np.uint8), **kwargs)


def test_decode_takes_bytes_not_a_path(codec, tmp_path):
    with pytest.raises(TypeError, match=r"not a path; pass Path\(.*\)\.read_bytes\(\)"):
        codec.decode(str(tmp_path / "photo.enso"))
    with pytest.raises(TypeError, match="takes .enso bytes, not int"):
        codec.decode(3)


# -- translate ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def horse2zebra() -> translate.ImageTranslator:
    return translate.load()


def test_translate_takes_every_input_type_as_apply_generator_does(horse2zebra, photo):
    expected = apply_generator(load_translator(None).generator("ab"), image_tensor(photo))
    arr = np.asarray(photo)
    for x in (photo, arr, torch.from_numpy(arr.copy()).permute(2, 0, 1)):
        assert torch.equal(horse2zebra.apply_tensor(x), expected), type(x)
    out = horse2zebra.apply(photo)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == photo.size
    assert np.array_equal(np.asarray(out), np.asarray(to_pil(expected)))
    back = horse2zebra.apply_tensor(out, direction="ba")
    assert back.shape == (3, photo.height, photo.width) and not torch.equal(back, expected)


def test_translate_makes_grey_and_rgba_rgb(horse2zebra, photo):
    grey = horse2zebra.apply_tensor(photo.convert("L"))
    assert grey.shape == (3, photo.height, photo.width)
    assert torch.equal(horse2zebra.apply_tensor(photo.convert("RGBA")), horse2zebra.apply_tensor(photo))


def test_translate_errors(horse2zebra, tmp_path):
    with pytest.raises(ValueError, match="direction must be 'ab' or 'ba', not 'xy'"):
        horse2zebra.apply(np.zeros((8, 8, 3), np.uint8), direction="xy")
    with pytest.raises(ValueError, match="tile must be 64 px or more"):
        horse2zebra.apply(np.zeros((8, 8, 3), np.uint8), tile=8)
    with pytest.raises(ValueError, match="values in"):
        horse2zebra.apply(np.full((8, 8, 3), 2.0))
    with pytest.raises(Exception, match="not a folder"):
        translate.load(tmp_path / "missing")


# -- shared -------------------------------------------------------------------------------------
def test_shared_exports_the_registry_trainer_and_loader():
    from shared.checkpoint import load_exported
    from shared.registry import build
    from shared.trainer import TrainConfig, Trainer

    assert (shared.build, shared.Trainer, shared.TrainConfig, shared.load) == (build, Trainer, TrainConfig, load_exported)
    assert sorted(shared.__all__) == ["TrainConfig", "Trainer", "build", "load"]
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        shared.nope  # noqa: B018
