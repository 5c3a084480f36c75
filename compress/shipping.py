"""Turn a training run into shippable codec weights: fp16 safetensors + JSON, entropy tables included."""
from __future__ import annotations

from pathlib import Path

import torch

from shared.checkpoint import export_weights, model_from_checkpoint
from shared.errors import UserError


def export_codec(run: Path, out: Path) -> Path:
    """Write ``out/model.safetensors`` (fp16 weights, int32 entropy tables) and ``out/model.json``.

    The weights are rounded to fp16 first and the entropy tables computed from the rounded
    weights, so the shipped file is exactly what encoders and decoders use.
    """
    if not (Path(run) / "checkpoint.pt").is_file():
        raise UserError(f"{run} holds no checkpoint.pt; give a run folder made by 'compress train'")
    model = model_from_checkpoint(Path(run) / "checkpoint.pt")
    step = model.trained_steps
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    model.update(force=True)
    path = export_weights(model, out, extra={"trained_steps": step, "run": Path(run).name})
    from safetensors.torch import load_file, save_file

    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    return path
