"""``translate demo``: the shipped horse2zebra translator on a photo every install has.

Translates the photo both ways (horse → zebra and zebra → horse, as if it were of either domain),
reconstructs each through the other generator, and writes the images and a page of the triplets
with a before/after slider (input against translation) per direction.
"""
from __future__ import annotations

import time
from pathlib import Path

from shared.data.images import load_image, sample_photo, save_image
from shared.metrics.image import psnr
from shared.precision import resolve_device
from shared.threads import use_threads
from shared.webpage import Side, Slider, write_page

from .apply import apply_generator, load_translator, work_macs
from .options import DemoOptions


def run_demo(options: DemoOptions) -> dict:
    """Translate ``options.image`` (None: the bundled photo) A → B → A and B → A → B into
    ``options.out`` with ``options.model`` (None: the shipped horse2zebra weights); returns seconds
    and cycle PSNR per direction. Sets the process's CPU threads (:func:`shared.threads.use_threads`,
    by the photo's work when ``options.threads`` is 0)."""
    out = Path(options.out)
    src = Path(options.image) if options.image is not None else sample_photo()
    translator = load_translator(options.model, "horse2zebra", resolve_device(options.device))
    img = load_image(src, "RGB")
    use_threads(options.threads, work_macs(translator.generator("ab"), tuple(img.shape[1:])))
    results, rows = {}, []
    for name, fwd, bwd in (("horse2zebra", "ab", "ba"), ("zebra2horse", "ba", "ab")):
        t0 = time.perf_counter()
        fake = apply_generator(translator.generator(fwd), img)
        seconds = time.perf_counter() - t0
        rec = apply_generator(translator.generator(bwd), fake)
        save_image(fake, out / f"{name}.png")
        save_image(rec, out / f"{name}_cycle.png")
        results[name] = {"seconds": seconds, "cycle_psnr": float(psnr(rec[None], img[None]))}
        rows.append((name, [("input", "input.png"), (name, f"{name}.png"), ("back again", f"{name}_cycle.png")]))
    save_image(img, out / "input.png")
    summary = {k: f"{v['seconds'] * 1000:.0f} ms, cycle PSNR {v['cycle_psnr']:.2f} dB" for k, v in results.items()}
    sliders = [Slider(name, Side("input", "input.png"), Side(name, f"{name}.png", summary[name])) for name in results]
    write_page(out / "index.html", f"ensō translate demo: {src.name}", [("both directions", rows + sliders)], summary)
    print(f"{src.name}: {img.shape[2]}×{img.shape[1]} → {out}/")
    for k, v in summary.items():
        print(f"  {k:12s} {v}")
    return results
