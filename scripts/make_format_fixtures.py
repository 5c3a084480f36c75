#!/usr/bin/env python
"""Write the format-stability fixtures that tests/test_format_stability.py reads. For each shipped
codec named below: a crop of matplotlib's sample photo coded at one quality (``NAME.enso``); the
gained latent y its encoder coded (rounded to fp16 first, so stored exactly) and the hyper-latent
z = h_a(y) it computed (``NAME.latent.safetensors``); the SHA-256 of the decoded latent ŷ
(``fixtures.json``).

The tests check that today's code decodes those files to the same ŷ and codes that (y, z) to the
same bytes (given z, coding is exact integer arithmetic and rANS: the same on every machine). Run
this only when the container's VERSION changes (files of the old version are then refused, not
misread) or when a shipped codec's weights change:

    python scripts/make_format_fixtures.py [--out tests/data/format]
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch

CODECS = ("mean_scale_cc", "mean_scale")
QUALITY = 0.5
CROP = (slice(200, 264), slice(220, 348))  # 64×128 of the portrait: face and uniform


def latent_sha256(y_hat: torch.Tensor) -> str:
    """SHA-256 of a decoded latent's float64 values (as ``decompress_latent`` computes them)."""
    return hashlib.sha256(y_hat.double().contiguous().numpy().tobytes()).hexdigest()


def main() -> None:
    from safetensors.torch import save_file

    from compress.codec import Codec
    from compress.container import VERSION, parse, quality_code
    from shared.data.images import load_image, sample_photo

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "data" / "format")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    img = load_image(sample_photo())[:, CROP[0], CROP[1]].contiguous()
    index = {"format_version": VERSION, "quality": QUALITY, "codecs": {}}
    torch.set_num_threads(1)
    with torch.no_grad():
        for name in CODECS:
            codec = Codec.load(name)
            code = quality_code(QUALITY)
            y = (codec.analyse(img) * codec._gains(code)[0]).half().float()  # stored as fp16, exactly
            z = codec._net(codec.model.h_a, y).contiguous()
            with torch.autocast("cpu", enabled=False):
                strings = codec.model.compress_latent(y, run=lambda net, v: z)
                data = codec._pack("RGB", img.shape[1:], code, strings, None)
                header, sections = parse(data)
                y_hat = codec.model.decompress_latent(sections, y.shape[-2:])
            (out / f"{name}.enso").write_bytes(data)
            save_file({"y": y.half(), "z": z}, str(out / f"{name}.latent.safetensors"))
            index["codecs"][name] = {"weights_hash": header.weights_hash.hex(), "y_hat_sha256": latent_sha256(y_hat)}
    (out / "fixtures.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"wrote {len(CODECS)} fixtures to {out}")


if __name__ == "__main__":
    main()
