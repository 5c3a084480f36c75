"""The one image-loading path: conversions and one-line errors for bad files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from shared.data.images import MAX_PIXELS, ImageFolder, list_images, load_image
from shared.errors import UserError


def save(path, mode="RGB", size=(20, 12)):
    arr = (np.arange(size[0] * size[1] * 3) % 251).astype(np.uint8).reshape(size[1], size[0], 3)
    Image.fromarray(arr).convert(mode).save(path)
    return path


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "CMYK", "P", "I;16"])
def test_any_mode_loads_as_rgb_and_grey(tmp_path, mode):
    ext = "tif" if mode in ("CMYK", "I;16") else "png"
    path = save(tmp_path / f"x.{ext}", mode)
    rgb, grey = load_image(path, "RGB"), load_image(path, "L")
    assert rgb.shape == (3, 12, 20) and grey.shape == (1, 12, 20)
    assert rgb.dtype == torch.float32 and 0 <= rgb.min() and rgb.max() <= 1


def test_pixel_values_are_exact(tmp_path):
    path = save(tmp_path / "x.png")
    expected = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).float() / 255
    assert torch.equal(load_image(path), expected)


def test_truncated_image_is_one_clear_error(tmp_path):
    path = save(tmp_path / "x.png", size=(200, 200))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UserError, match=r"x\.png cannot be read .*truncated"):
        load_image(path)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(UserError, match="cannot be read"):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    side = int(MAX_PIXELS**0.5) + 2
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)  # 1-bit: tiny file, huge canvas
    with pytest.raises(UserError, match="decompression bomb"):
        load_image(path)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(UserError, match="holds no images"):
        list_images(tmp_path / "empty")


def test_image_folder_crops_are_reproducible_and_vary(tmp_path):
    for i in range(3):
        save(tmp_path / f"{i}.png", size=(64, 48))
    ds = ImageFolder(tmp_path, crop=16)
    a, b, c = ds[(1, 7)], ds[(1, 7)], ds[(1, 8)]
    assert a.shape == (3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(UserError, match="smaller than the crop"):
        ImageFolder(tmp_path, crop=100)[(0, 1)]


def test_exif_orientation_turns_the_image_upright(tmp_path):
    """A camera JPEG stored sideways with orientation 6 (turn 90° clockwise) loads as viewers show it."""
    im = Image.new("RGB", (20, 10), (200, 30, 30))
    im.paste((30, 30, 200), (0, 0, 5, 10))  # blue stripe on the stored frame's left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(tmp_path / "cam.jpg", exif=exif, quality=95)
    x = load_image(tmp_path / "cam.jpg")
    assert x.shape == (3, 20, 10)
    assert x[2, 0].mean() > 0.6 and x[2, -1].mean() < 0.3  # the left edge is now the top row


def test_images_between_pillows_warning_and_its_limit_load(tmp_path, monkeypatch):
    """Pillow warns above Image.MAX_IMAGE_PIXELS; ensō's limit is twice that, so such images load."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60 * 60)
    import shared.data.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 2 * 60 * 60)
    Image.new("RGB", (70, 70)).save(tmp_path / "mid.png")
    assert load_image(tmp_path / "mid.png").shape == (3, 70, 70)
    Image.new("RGB", (90, 90)).save(tmp_path / "big.png")
    with pytest.raises(UserError, match="pixels|too large"):
        load_image(tmp_path / "big.png")
