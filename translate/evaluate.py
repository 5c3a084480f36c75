"""Evaluate a translator on a data set's test split: ``translate eval``.

    translate eval horse2zebra [--model RUN] [--data DIR] [-o OUT] [--size 256] [--limit N] [--html 16] [--split test|val]

The protocol of CUT (Park et al. 2020) and its FID tables: every test image is resized to
``size``² (256), translated, rounded to 8 bits and saved as PNG; FID and KID compare the translated
test A with the real test B (and the translated test B with the real test A) through pytorch-fid's
Inception (pool3, 2048-d; see :mod:`shared.metrics.distribution` for where its weights come from).
The cycle-reconstruction PSNR (A → B → A against A, and B → A → B against B) is reported too.

The options are :class:`translate.options.EvalOptions`. Written to ``OUT`` (default: ``RUN/eval``
for a run folder; required for the shipped weights):
``fake_B/``, ``fake_A/`` (translated test images), ``images/`` (the triplets on the page),
``results.json`` and ``index.html``, a page of input / translated / reconstructed triplets, each
with an input | translation slider (:mod:`shared.webpage`).
``fid_untranslated`` is the baseline of doing nothing: FID of the source test images themselves
against the target's.
KID is reported in plain units; CUT's tables quote KID × 100. :func:`preview_page` writes the
same page without metrics: ``translate train`` leaves one in ``RUN/web/`` when it ends.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from shared.config import save_json
from shared.data.images import list_images, load_image, save_image
from shared.metrics import distribution
from shared.metrics.image import psnr
from shared.precision import resolve_device
from shared.threads import use_threads
from shared.webpage import row_slider, write_page

from .apply import load_translator, resize
from .data import dataset_folders, held_out
from .models.translator import Translator
from .options import EvalOptions

#: images held out per domain when a model does not list its own (``translate train --val``'s default)
VAL_IMAGES = 100
#: direction → (source folder side, target side, forward generator, backward generator)
SIDES = {"ab": ("A", "B", "ab", "ba"), "ba": ("B", "A", "ba", "ab")}


def quantize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float → the same values rounded to 8 bits (what a saved PNG holds)."""
    return x.clamp(0, 1).mul(255).round().div(255)


@torch.no_grad()
def _to_net(net: torch.nn.Module, img: torch.Tensor) -> torch.Tensor:
    """One (3, S, S) image in [0, 1] through a generator ([-1, 1] inside) → (3, S, S) in [0, 1], 8-bit."""
    p = next(net.parameters())
    y = net(img[None].to(p.device, p.dtype) * 2 - 1)
    return quantize(((y[0].float() + 1) / 2).cpu())


def translate_split(
    model: Translator, files: list[Path], direction: str, out: Path, size: int, html_rows: int, progress: bool = True
) -> tuple[list[torch.Tensor], list[float], list[tuple[str, list[tuple[str, str]]]]]:
    """Translate and reconstruct ``files``; saves ``out/fake_<target>/NAME.png`` and the first
    ``html_rows`` triplets under ``out/images/``. Returns (fakes, cycle PSNRs, page rows)."""
    src, dst, fwd, bwd = SIDES[direction]
    g_fwd = model.generator(fwd)
    g_bwd = model.generator(bwd) if bwd in model.directions else None  # a one-sided model has no way back
    fakes, psnrs, rows = [], [], []
    for i, f in enumerate(tqdm(files, desc=f"{src} → {dst}", unit="img", disable=not progress)):
        x = quantize(resize(load_image(f, "RGB"), (size, size), "bicubic"))
        fake = _to_net(g_fwd, x)
        save_image(fake, out / f"fake_{dst}" / f"{f.stem}.png")
        fakes.append(fake)
        triplet = [(f"real {src}", x), (f"fake {dst}", fake)]
        if g_bwd is not None:
            rec = _to_net(g_bwd, fake)
            psnrs.append(float(psnr(rec[None], x[None])[0]))
            triplet.append((f"rec {src}", rec))
        if i < html_rows:
            cells = []
            for caption, img in triplet:
                rel = f"images/{direction}_{f.stem}_{caption.split()[0]}.png"
                save_image(img, out / rel)
                cells.append((caption, rel))
            rows.append((f.stem, cells))
    return fakes, psnrs, rows


def preview_page(model: Translator, folders: dict[str, Path], out: Path, size: int = 256, n: int = 8) -> Path:
    """``out/index.html``: the first ``n`` images of each domain's folder (``folders``: side → folder)
    with their translations and cycle reconstructions, as the anchor's per-run ``web/`` page."""
    sections, summary = [], {"model": f"{getattr(model, 'trained_steps', '?')} steps"}
    model = model.eval()
    for direction in model.directions:
        src, dst, _, _ = SIDES[direction]
        _, psnrs, rows = translate_split(model, list_images(folders[src])[:n], direction, out, size, n, progress=False)
        sections.append((f"{src} → {dst} → {src}", rows))
        if psnrs:
            summary[f"{src}2{dst} cycle PSNR ({len(psnrs)} images)"] = f"{sum(psnrs) / len(psnrs):.2f} dB"
    return write_page(out / "index.html", "translations and cycle reconstructions", sections, summary)


def split_files(model_source: str | Path | None, dataset: str, data: str | Path | None, split: str) -> dict[str, list[Path]]:
    """The images of ``split`` by domain side: testA/testB, or the held-out part of trainA/trainB."""
    if split == "test":
        test_a, test_b = dataset_folders(dataset, data, split="test")
        return {"A": list_images(test_a), "B": list_images(test_b)}
    if split != "val":
        raise ValueError(f"split must be 'test' or 'val', not {split!r}")
    train_a, train_b = dataset_folders(dataset, data, split="train")
    listed = None
    if model_source is not None and (Path(model_source) / "config.json").is_file():
        listed = json.loads((Path(model_source) / "config.json").read_text()).get("val")
    out = {}
    for side, folder in (("A", train_a), ("B", train_b)):
        files = list_images(folder)
        if listed is None:
            out[side] = held_out(files, VAL_IMAGES)
        else:
            names = set(listed[side])
            out[side] = [f for f in files if f.name in names]
            if len(out[side]) != len(names):
                raise ValueError(f"{folder} lacks {len(names) - len(out[side])} of the run's held-out images; give the data folder the run trained on")
        if len(out[side]) < 2:
            raise ValueError("the run held out no images (it trained with val 0); evaluate it on the test split")
    return out


def evaluate(options: EvalOptions) -> dict:
    """Evaluate every direction the model of ``options`` has; returns (and writes to
    ``out/results.json``) per direction: ``fid``, ``kid``, ``kid_std``, ``cycle_psnr`` (dB, mean;
    None for a one-sided model) and ``n`` (images translated).

    ``split`` ``"test"``: testA/testB. ``"val"``: the images held out of trainA/trainB for model
    selection, as listed in the run's ``config.json`` (else the default draw of
    :func:`translate.data.held_out`, 100 per domain). Sets the process's CPU threads to
    ``options.threads`` (0: as for large work, since FID's Inception network makes every image large).
    ``ValueError`` (or ``FileNotFoundError``) before anything is written when there is no output
    folder, model or data."""
    o = options
    model_source, dataset, size, inception_weights = o.model, o.dataset, o.size, o.inception_weights
    if o.out is not None:
        out = Path(o.out)
    elif model_source is not None and (Path(model_source) / "checkpoint.pt").is_file():
        out = Path(model_source) / "eval"
    else:
        raise ValueError("name an output folder (out) for the evaluation; only a run folder has a default, RUN/eval")
    device = resolve_device(o.device)
    use_threads(o.threads, None)
    model = load_translator(model_source, dataset, device)
    files = {side: fs[:o.limit] for side, fs in split_files(model_source, dataset, o.data, o.split).items()}
    distribution.inception_model(inception_weights)  # weights missing: fail before translating anything
    t0 = time.perf_counter()
    reals = {
        side: distribution.inception_features(
            (quantize(resize(load_image(f, "RGB"), (size, size), "bicubic"))[None] for f in fs), inception_weights, device
        )
        for side, fs in files.items()
    }
    results: dict = {"dataset": dataset, "split": o.split, "size": size, "model": str(model_source or f"shipped {dataset}"),
                     "trained_steps": getattr(model, "trained_steps", None), "generator": vars(model.config)}
    sections = []
    for direction in model.directions:
        src, dst, _, _ = SIDES[direction]
        fakes, psnrs, rows = translate_split(model, files[src], direction, out, size, o.html)
        feats = distribution.inception_features((f[None] for f in fakes), inception_weights, device)
        kid, kid_std = distribution.kid(feats, reals[dst])
        results[f"{src}2{dst}"] = {
            "fid": distribution.fid(feats, reals[dst]), "kid": kid, "kid_std": kid_std,
            "cycle_psnr": sum(psnrs) / len(psnrs) if psnrs else None, "n": len(fakes), "n_real": len(files[dst]),
            "fid_untranslated": distribution.fid(reals[src], reals[dst]),  # the baseline: no translation at all
        }
        sections.append((f"{src} → {dst} → {src}", rows + [row_slider(r) for r in rows]))
    results["seconds"] = round(time.perf_counter() - t0, 1)
    save_json(results, out / "results.json")
    summary = {
        f"{k} ({v['n']} vs {v['n_real']} real)": f"FID {v['fid']:.1f} (untranslated {v['fid_untranslated']:.1f}) · KID×100 {100 * v['kid']:.2f}"
                                                         + (f" ± {100 * v['kid_std']:.2f}" if v["kid_std"] else " (one subset: all images)")
        + (f" · cycle PSNR {v['cycle_psnr']:.2f} dB" if v["cycle_psnr"] is not None else "")
        for k, v in results.items() if isinstance(v, dict) and "fid" in v
    }
    summary["model"] = f"{results['model']} ({results['trained_steps']} steps)"
    write_page(out / "index.html", f"{dataset}: translations and cycle reconstructions", sections, summary)
    return results
