#!/usr/bin/env python
"""The encode-time safeguard's cost (compress.safeguard): each image encoded as
``Codec.encode(..., safeguard=True)`` does it, timing the learned encode and the safeguard's step
after it separately (in one call, so a busy machine slows both alike), at each quality; prints per
encode the seconds, the bytes, whether the safeguard wrote a classical file, and the time ratio of
the encode with the safeguard over the one without.

    python scripts/bench_safeguard.py [--data DIR (default $ENSO_DATA/kodak)] [--limit 4] [--quality 0 1] [--threads 1]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    from compress.codec import Codec
    from compress.container import parse, quality_code
    from shared.data.images import list_images, load_image
    from shared.paths import data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--quality", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=None)
    ns = parser.parse_args()
    torch.set_num_threads(ns.threads)
    codec = Codec.load(ns.model) if ns.model else Codec.load()
    totals = {False: 0.0, True: 0.0}
    for path in list_images(data_dir("kodak", ns.data, option="--data"))[: ns.limit]:
        x = load_image(path, "RGB")
        mode, rgb, alpha = codec._prepare(x)
        for q in ns.quality:
            code = quality_code(q)
            t0 = time.perf_counter()
            y = codec.analyse(rgb)
            learned = codec._pack(mode, rgb.shape[1:], code, codec._code(y, code), alpha)
            t1 = time.perf_counter()
            written = codec._safeguarded(rgb, y, code, learned, mode, alpha)
            t2 = time.perf_counter()
            totals[False] += t1 - t0
            totals[True] += t2 - t0
            print(f"{path.name} q={q:g}: learned {t1 - t0:7.2f} s {len(learned):8d} bytes; safeguard +{t2 - t1:6.2f} s, "
                  f"wrote {len(written):8d} bytes, coding={parse(written)[0].coding}, unchanged: {written == learned}", flush=True)
    print(f"total encode seconds: off {totals[False]:.1f}, on {totals[True]:.1f}, ratio {totals[True] / totals[False]:.3f}")


if __name__ == "__main__":
    main()
