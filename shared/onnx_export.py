"""Write PyTorch networks as ONNX files and run them in onnxruntime: ensō's one adapter over
``torch.onnx`` and ``onnxruntime`` (the optional ``onnx`` extra: ``pip install 'enso[onnx]'``).

:func:`export_onnx` traces a module with torch's TorchScript-based exporter (``dynamo=False``),
with the named dimensions of each input left dynamic, and writes one self-contained ``.onnx`` file
per network (weights inside, fp32, opset 17). That exporter is deprecated since torch 2.9 in
favour of the ``torch.export``-based one (``dynamo=True``, which needs ``onnxscript``); both give
the same graphs for these convolutional networks, and the TorchScript one took 0.8 s for a
small codec's g_a where the other took 16 s, so ensō uses it while torch has it. :func:`run_onnx` runs such
a file on NumPy inputs on the CPU. :func:`write_onnx_files` is what ``compress export --onnx`` and
``translate export --onnx`` share: several networks into one folder, each checked in onnxruntime
against PyTorch on a second input size before anything is written, plus ``onnx.json`` describing
them; no file is replaced without ``force``.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .errors import UserError


def require_onnx() -> None:
    """Raise a UserError naming the extra to install when onnx or onnxruntime is missing."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"ONNX export needs {' and '.join(missing)}: pip install 'enso[onnx]' (or pip install onnx onnxruntime)")


def export_onnx(module: nn.Module, example: Sequence[torch.Tensor], path: str | os.PathLike, input_names: Sequence[str],
                output_names: Sequence[str], dynamic: dict[str, dict[int, str]], doc: str = "") -> Path:
    """Write ``module`` (run in eval mode, fp32, on the CPU) as one ONNX file at ``path``, traced on
    ``example`` (one tensor per input, named ``input_names``); ``dynamic`` maps an input or output
    name to {axis: dimension name} for the axes left free. ``doc`` becomes the model's doc string. Returns ``path``."""
    import warnings

    import onnx

    module = module.eval().float().cpu()
    path = Path(path)
    with torch.no_grad(), warnings.catch_warnings():
        # the exporter's notice of its own deprecation (module docstring) and its notes on constant folding and
        # instance norm's input statistics: what the graph computes is checked in onnxruntime instead
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # instance norm's size check, which the trace keeps as a constant
        torch.onnx.export(module, tuple(example), str(path), input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes={k: dict(v) for k, v in dynamic.items()}, opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    proto.doc_string = doc
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path))
    return path


def run_onnx(path: str | os.PathLike, inputs: dict[str, np.ndarray | torch.Tensor]) -> list[np.ndarray]:
    """Run the ONNX file at ``path`` on the CPU in onnxruntime: {input name: array} → its outputs, in order (fp32 arrays)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {k: (v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)).astype(np.float32) for k, v in inputs.items()}
    return session.run(None, feed)


@dataclass
class Network:
    """One network to write: ``module`` → ``file`` (e.g. ``g_a.onnx``), traced on ``example`` and
    checked on ``check`` (inputs of another size), with ``inputs`` / ``outputs`` names, the
    ``dynamic`` axes of :func:`export_onnx` and ``describe``, what ``onnx.json`` says of it."""

    file: str
    module: nn.Module
    example: Sequence[torch.Tensor]
    check: Sequence[torch.Tensor]
    inputs: Sequence[str]
    outputs: Sequence[str]
    dynamic: dict[str, dict[int, str]]
    describe: dict[str, Any] = field(default_factory=dict)


def write_onnx_files(out: str | os.PathLike, networks: Sequence[Network], manifest: dict[str, Any], force: bool = False) -> dict[str, float]:
    """Export each network into ``out`` and write ``out/onnx.json`` (``manifest`` plus each
    network's description and measured difference). Each file is run in onnxruntime on its
    ``check`` inputs and compared with PyTorch first; the files appear only once all have passed
    (a difference over 1e-3 is an error). Returns {file: max abs difference}. Existing files are
    replaced only with ``force``."""
    require_onnx()
    out = Path(out)
    targets = [out / n.file for n in networks] + [out / "onnx.json"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise UserError(f"{existing[0]} exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; give a folder for the ONNX files")
    out.mkdir(parents=True, exist_ok=True)
    differences: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=out, prefix=".onnx-") as tmp:
        for n in networks:
            path = export_onnx(n.module, n.example, Path(tmp) / n.file, n.inputs, n.outputs, n.dynamic, json.dumps(n.describe))
            with torch.no_grad():
                expected = n.module(*n.check)
            expected = expected if isinstance(expected, (tuple, list)) else (expected,)
            got = run_onnx(path, dict(zip(n.inputs, n.check)))
            differences[n.file] = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
            if not differences[n.file] <= 1e-3:
                raise RuntimeError(f"{n.file} differs from PyTorch by {differences[n.file]:.3g} in onnxruntime; not written")
        info = manifest | {"networks": {n.file: n.describe | {"max_abs_difference_onnxruntime": differences[n.file]} for n in networks}}
        (Path(tmp) / "onnx.json").write_text(json.dumps(info, indent=2) + "\n")
        for p in targets:
            os.replace(Path(tmp) / p.name, p)
    return differences
