"""Self-contained HTML pages of results: tables of captioned images and before/after sliders.

:func:`write_page` writes ``index.html`` beside the images it shows (paths relative to the page):
no network, no external scripts or styles. A :class:`Slider` stacks two images of one size; an
``<input type=range>`` (0–100) clips the top one (``before``, on the left) to the slider's
position, so dragging it wipes between the two. Each side carries its caption and numbers (e.g.
bpp, PSNR, LPIPS) under the picture. ``compress demo`` and the ``translate`` commands use it.
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

from shared.config import atomic_write_bytes


@dataclass(frozen=True)
class Side:
    """One side of a slider: its ``caption``, the image ``src`` (relative to the page) and ``numbers`` shown under it."""

    caption: str
    src: str
    numbers: str = ""


@dataclass(frozen=True)
class Slider:
    """Two images of the same size, ``before`` (left of the handle) over ``after`` (right), under a ``label``."""

    label: str
    before: Side
    after: Side


#: a row of a table: a label (e.g. the image's name) and its cells, each (caption, image path relative to the page)
Row = tuple[str, Sequence[tuple[str, str]]]
#: a section: a heading and its items, table rows and sliders in any order
Section = tuple[str, Sequence[Union[Row, Slider]]]

def row_slider(row: Row) -> Slider:
    """A table row's first two cells (e.g. the input and its translation) as a slider under the row's label."""
    label, cells = row
    (c0, src0), (c1, src1) = cells[0], cells[1]
    return Slider(label, Side(c0, src0), Side(c1, src1))


STYLE = (
    "body{font-family:sans-serif;margin:1.5em} td{padding:4px;text-align:center;vertical-align:top}"
    " table img{width:256px;height:auto} th{text-align:left;padding-right:1em}"
    " .slider{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top;max-width:100%}"
    " .frame{position:relative;display:inline-block;line-height:0;max-width:100%}"
    " .frame img{display:block;max-width:100%;height:auto}"
    " .frame img.before{position:absolute;left:0;top:0;width:100%;height:100%}"
    " .handle{position:absolute;top:0;bottom:0;width:2px;background:#fff;box-shadow:0 0 3px #000;pointer-events:none}"
    " .slider input{display:block;width:100%;margin:.4em 0}"
    " .sides{display:flex;justify-content:space-between;gap:1em;font-size:.9em} .sides .right{text-align:right}"
    " .numbers{color:#444}"
)
#: moves each slider's clip and handle with its range input
SCRIPT = (
    "document.querySelectorAll('.slider').forEach(function(s){"
    "var r=s.querySelector('input'),b=s.querySelector('img.before'),h=s.querySelector('.handle');"
    "function set(){b.style.clipPath='inset(0 '+(100-r.value)+'% 0 0)';h.style.left=r.value+'%';}"
    "r.addEventListener('input',set);set();});"
)


def _side_html(side: Side, css: str) -> str:
    esc = html.escape
    numbers = f"<br><span class='numbers'>{esc(side.numbers)}</span>" if side.numbers else ""
    return f"<div class='{css}'><b>{esc(side.caption)}</b>{numbers}</div>"


def slider_html(s: Slider) -> str:
    """One slider's HTML (its behaviour is :data:`SCRIPT`, once per page)."""
    esc = html.escape
    return (
        f"<figure class='slider'><figcaption><b>{esc(s.label)}</b></figcaption><div class='frame'>"
        f"<img class='after' src='{esc(s.after.src, quote=True)}' alt='{esc(s.after.caption, quote=True)}'>"
        f"<img class='before' src='{esc(s.before.src, quote=True)}' alt='{esc(s.before.caption, quote=True)}'>"
        "<div class='handle'></div></div>"
        f"<input type='range' min='0' max='100' value='50' aria-label='{esc(s.before.caption, quote=True)} | {esc(s.after.caption, quote=True)}'>"
        f"<div class='sides'>{_side_html(s.before, 'left')}{_side_html(s.after, 'right')}</div></figure>"
    )


def write_page(path: str | os.PathLike, title: str, sections: Sequence[Section], summary: dict[str, str]) -> Path:
    """Write a self-contained HTML page (atomically) to ``path``: ``title``, a table of ``summary``
    (name → value, e.g. FID), then each section: its heading, its table rows of captioned images
    (one table, headed by the first row's captions) and its sliders."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<table>" + "".join(f"<tr><th>{esc(k)}</th><td style='text-align:left'>{esc(v)}</td></tr>" for k, v in summary.items()) + "</table>",
    ]
    for heading, items in sections:
        parts.append(f"<h2>{esc(heading)}</h2>")
        rows = [item for item in items if not isinstance(item, Slider)]
        if rows:
            parts.append("<table><tr><th></th>" + "".join(f"<th>{esc(c)}</th>" for c, _ in rows[0][1]) + "</tr>")
            for label, cells in rows:
                imgs = "".join(f"<td><img src='{esc(src, quote=True)}' alt='{esc(c, quote=True)}'></td>" for c, src in cells)
                parts.append(f"<tr><th>{esc(label)}</th>{imgs}</tr>")
            parts.append("</table>")
        parts += [slider_html(item) for item in items if isinstance(item, Slider)]
    parts.append(f"<script>{SCRIPT}</script></body></html>\n")
    path = Path(path)
    atomic_write_bytes(path, "\n".join(parts).encode())
    return path
