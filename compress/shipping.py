"""Turn a training run into shippable codec weights: fp16 safetensors + JSON, entropy tables included."""
from __future__ import annotations

from pathlib import Path

import torch

from shared.checkpoint import export_weights, full_export, keep_changes_from, model_from_checkpoint, save_safetensors
from shared.errors import UserError


def export_codec(run: Path, out: Path, base: Path | None = None) -> Path:
    """Write ``out/model.safetensors`` (fp16 weights, int32 entropy tables) and ``out/model.json``;
    with ``base`` (an exported codec folder), only the tensors that differ from base's
    (:func:`~shared.checkpoint.keep_changes_from`: a variant trained with
    ``train_only="transforms"`` then ships its transforms and gains alone).

    The weights are rounded to fp16 first and the entropy tables computed from the rounded
    weights, so the shipped file is exactly what encoders and decoders use. Floating-point
    buffers are the code's constants, not learned weights, and stay float32: in fp16 the
    entropy models' 1e-9 likelihood bounds become 0 (unbounded estimates, −log2 0 = inf once an
    outlier's likelihood underflows) and the scale table would no longer be the one its CDFs
    were built from.
    """
    if not (Path(run) / "checkpoint.pt").is_file():
        raise UserError(f"{run} holds no checkpoint.pt; give a run folder made by 'compress train'")
    if base is not None:
        full_export(base)  # refuse a bad base before writing anything
    model = model_from_checkpoint(Path(run) / "checkpoint.pt")
    step = model.trained_steps
    with torch.no_grad():
        for t in model.parameters():
            t.copy_(t.half().float())
    model.update(force=True)
    parts = model.export_parts() if hasattr(model, "export_parts") else None  # e.g. without a training-only discriminator
    path = export_weights(model, out, extra={"trained_steps": step, "run": Path(run).name}, parts=parts)
    from safetensors.torch import load_file

    params = {name for name, _ in model.named_parameters()}
    save_safetensors({k: (v.half() if v.is_floating_point() and k in params else v) for k, v in load_file(str(path)).items()}, path)
    if base is not None:
        keep_changes_from(out, base)
    return path
