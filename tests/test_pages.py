"""The result pages (shared.webpage): self-contained HTML with before/after sliders, written by
``compress demo`` and ``translate demo``, opened in a real headless Chromium (skipped without one)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import torch

from shared import registry
from shared.checkpoint import export_weights
from shared.data.images import save_image
from shared.errors import UserError
from shared.webpage import Side, Slider, write_page

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: appended to a copy of a page: after load, records each image's natural width, then moves the
#: first slider to 20 and records its top image's clip and handle before and after
PROBE = """<script>window.addEventListener('load', function(){
  var s = document.querySelector('.slider'), r = s.querySelector('input'), b = s.querySelector('img.before');
  var out = {widths: Array.from(document.images).map(function(i){return i.naturalWidth;}),
             clip_before: getComputedStyle(b).clipPath, handle_before: s.querySelector('.handle').style.left};
  r.value = 20; r.dispatchEvent(new Event('input'));
  out.clip_after = getComputedStyle(b).clipPath; out.handle_after = s.querySelector('.handle').style.left;
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});</script>"""


def browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        pytest.skip("needs a headless Chromium (Debian: apt-get install chromium); none of chromium, chromium-browser, google-chrome is on PATH")
    return found


def probe_page(page) -> dict:
    """Open a copy of ``page`` (beside it, so its images resolve) with :data:`PROBE` in headless Chromium; the probe's findings."""
    copy = page.with_name("probe_" + page.name)
    copy.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    run = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                          "--virtual-time-budget=5000", "--dump-dom", copy.resolve().as_uri()], capture_output=True, text=True, timeout=300)
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout)
    assert found, f"the probe did not report (chromium exit {run.returncode}): {run.stderr[-500:]}"
    return json.loads(found.group(1).replace("&quot;", '"'))


def assert_page_works(page, images: int) -> None:
    html = page.read_text()
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", html), "the page loads something from the network"
    for src in re.findall(r"src='([^']+)'", html):
        assert (page.parent / src).is_file(), f"{src} is not beside the page"
    found = probe_page(page)
    assert len(found["widths"]) == images and all(w > 0 for w in found["widths"]), f"images that did not load: {found['widths']}"
    assert found["clip_before"] == "inset(0px 50% 0px 0px)" and found["handle_before"] == "50%", found
    assert found["clip_after"] == "inset(0px 80% 0px 0px)" and found["handle_after"] == "20%", f"the slider did not move the clip: {found}"


def smooth(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=g), size=(h, w), mode="bilinear")[0].clamp(0, 1)


def test_slider_page_is_self_contained_and_escapes_text(tmp_path):
    save_image(smooth(40, 60), tmp_path / "a.png")
    save_image(smooth(40, 60, 1), tmp_path / "b.png")
    items = [("row", [("a", "a.png")]), Slider("<l>", Side("a", "a.png", "1 bpp"), Side("b", "b.png"))]
    page = write_page(tmp_path / "index.html", "x <y>", [("s", items)], {"k": "v&"})
    html = page.read_text()
    assert "x &lt;y&gt;" in html and "&lt;l&gt;" in html and "v&amp;" in html and "1 bpp" in html
    assert html.count("type='range'") == 1 and html.count("<script>") == 1


def test_slider_page_loads_and_moves_in_a_headless_browser(tmp_path):
    browser()
    for name, seed in (("a.png", 0), ("b.png", 1), ("c.png", 2)):
        save_image(smooth(48, 64, seed), tmp_path / name)
    sliders = [Slider("one", Side("a", "a.png"), Side("b", "b.png", "0.4 bpp")), Slider("two", Side("c", "c.png"), Side("b", "b.png"))]
    assert_page_works(write_page(tmp_path / "index.html", "t", [("s", sliders)], {}), images=4)


def test_compress_demo_page_shows_original_and_classical_codecs_against_enso(tmp_path):
    from compress.classical import unavailable_reason
    from compress.cli import main

    save_image(smooth(64, 96), tmp_path / "photo_in.png")
    out = tmp_path / "demo"
    assert main(["demo", "--image", str(tmp_path / "photo_in.png"), "-o", str(out)]) == 0
    html = (out / "index.html").read_text()
    shown = ["jpeg"] + (["avif"] if unavailable_reason("avif") is None else [])
    assert html.count("class='slider'") == 1 + len(shown) and "original | ensō" in html
    assert "src='photo.png'" in html and "src='photo_enso.png'" in html and all(f"src='photo_{n}.png'" in html for n in shown)
    assert len(re.findall(r"\d\.\d{3} bpp · PSNR \d+\.\d\d dB", html)) >= 2 * (1 + len(shown))  # under each slider's sides and in the summary
    assert_page_works(out / "index.html", images=2 * (1 + len(shown)))


def test_translate_demo_page_has_a_slider_per_direction(tmp_path):
    from translate.cli import main

    torch.manual_seed(0)
    model = registry.build("cyclegan", {"generator": "resnet", "n_blocks": 1, "ngf": 8, "ndf": 8, "n_layers_d": 2}).eval()
    export_weights(model, tmp_path / "model", parts=model.export_parts(), half=True)
    save_image(smooth(64, 80), tmp_path / "photo.png")
    out = tmp_path / "demo"
    assert main(["demo", "--image", str(tmp_path / "photo.png"), "--model", str(tmp_path / "model"), "-o", str(out), "--device", "cpu"]) == 0
    html = (out / "index.html").read_text()
    assert html.count("class='slider'") == 2 and "cycle PSNR" in html
    assert_page_works(out / "index.html", images=6 + 4)  # the two triplets' table, then two sliders


def test_compress_eval_page_shows_the_first_images_against_classical_codecs_at_the_same_size(tmp_path):
    from compress.classical import unavailable_reason
    from compress.eval_page import write_eval_page
    from shared.metrics.perceptual import resolve_alexnet_weights

    files = []
    for i, (h, w) in enumerate([(64, 96), (48, 80), (64, 64)]):
        save_image(smooth(h, w, i), tmp_path / f"photo {i}.png")  # a space: file names on the page are made URL-safe
        files.append(tmp_path / f"photo {i}.png")
    page = write_eval_page(files, tmp_path / "eval", limit=2)
    html = page.read_text()
    shown = ["jpeg"] + (["avif"] if unavailable_reason("avif") is None else [])
    assert html.count("class='slider'") == 2 * (1 + len(shown)) and html.count("<b>original | ensō</b>") == 2 and "photo 2.png" not in html
    assert "2 of 3 (the first 2)" in html
    for stem in ("photo_0", "photo_1"):
        assert f"src='images/{stem}.png'" in html and f"src='images/{stem}_enso.png'" in html and all(f"src='images/{stem}_{n}.png'" in html for n in shown)
    try:
        resolve_alexnet_weights()
        lpips = r" · LPIPS \d\.\d{3}"
    except UserError:
        lpips = " · LPIPS n/a"
        assert "<th>LPIPS</th><td style='text-align:left'>unavailable: " in html
    assert len(re.findall(r"\d+\.\d{3} bpp · PSNR \d+\.\d\d dB" + lpips, html)) == 2 * (1 + 2 * len(shown)) + 1 + len(shown)  # per image: ensō's
    # side of the original's slider, both sides of each classical one; then each codec's mean
    pairs = re.findall(r"<b>(?:JPEG|AVIF) q=\d+ \(([^)]*)\)</b><br><span class='numbers'>(\d+\.\d{3}) bpp.*?<span class='numbers'>(\d+\.\d{3}) bpp", html)
    assert len(pairs) == 2 * len(shown)
    for caption, theirs, ours in pairs:
        assert caption == ("same size or less" if float(theirs) <= float(ours) else "its smallest file, larger than ensō's"), (caption, theirs, ours)
    assert_page_works(page, images=2 * 2 * (1 + len(shown)))


def test_compress_eval_page_says_when_lpips_is_unavailable(tmp_path):
    from compress.eval_page import write_eval_page

    save_image(smooth(48, 64), tmp_path / "a.png")
    html = write_eval_page([tmp_path / "a.png"], tmp_path / "eval", lpips_weights=tmp_path / "missing.safetensors", classical=("jpeg",)).read_text()
    assert "LPIPS n/a" in html and "unavailable: " in html and "missing.safetensors" in html
    assert re.search(r"\d\.\d{3} bpp · PSNR \d+\.\d\d dB · LPIPS n/a", html)
    with pytest.raises(ValueError, match="limit"):
        write_eval_page([tmp_path / "a.png"], tmp_path / "eval", limit=0)
