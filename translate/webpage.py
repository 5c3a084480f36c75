"""The HTML page of a translation run: rows of image triplets, as the anchor's ``web/index.html``."""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Sequence

from shared.config import atomic_write_bytes

#: one row: a label (the image's name) and its cells, each (caption, image path relative to the page)
Row = tuple[str, Sequence[tuple[str, str]]]


def write_page(path: str | os.PathLike, title: str, sections: Sequence[tuple[str, Sequence[Row]]], summary: dict[str, str]) -> Path:
    """Write a self-contained HTML page (atomically) to ``path``: ``title``, a table of ``summary``
    (name → value, e.g. FID), then each section (heading, rows of captioned images)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em} td{padding:4px;text-align:center;vertical-align:top}"
        " img{width:256px;height:auto;image-rendering:auto} th{text-align:left;padding-right:1em}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<table>" + "".join(f"<tr><th>{esc(k)}</th><td style='text-align:left'>{esc(v)}</td></tr>" for k, v in summary.items()) + "</table>",
    ]
    for heading, rows in sections:
        parts.append(f"<h2>{esc(heading)}</h2><table>")
        if rows:
            parts.append("<tr><th></th>" + "".join(f"<th>{esc(c)}</th>" for c, _ in rows[0][1]) + "</tr>")
        for label, cells in rows:
            imgs = "".join(f"<td><img src='{esc(src, quote=True)}' alt='{esc(c, quote=True)}'></td>" for c, src in cells)
            parts.append(f"<tr><th>{esc(label)}</th>{imgs}</tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    path = Path(path)
    atomic_write_bytes(path, "\n".join(parts).encode())
    return path
