#!/usr/bin/env python
"""Write the content benchmark (compress.content_benchmark): noisy, grainy, dithered, posterised,
synthetic and badly exposed images, from matplotlib's bundled photo and made here, no downloads.

    python scripts/make_content_benchmark.py -o content/ [--force]
    compress eval --data content/ --codecs ours,jpeg,avif -o rd_content/ --threads 1
"""
from __future__ import annotations

import argparse
from pathlib import Path

from shared.errors import UserError, run_cli


def main(argv=None) -> int:
    from compress.content_benchmark import build_benchmark

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument("--force", action="store_true", help="rewrite an existing benchmark there")
    ns = parser.parse_args(argv)
    try:
        paths = build_benchmark(ns.out, ns.force)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(f"wrote {len(paths)} images and content.json to {ns.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
