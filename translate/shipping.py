"""Turn a translation training run (CycleGAN, CUT, FastCUT) into shippable weights: the inference generators, fp16."""
from __future__ import annotations

import json
from pathlib import Path

from shared.checkpoint import export_weights, model_from_checkpoint

from .models.translator import Translator


def export_translator(run: Path, out: Path, force: bool = False) -> Path:
    """Write ``out/model.safetensors`` (the inference generators only, fp16: ``g_ab`` and ``g_ba``,
    or their moving averages where the model keeps them; no discriminators, heads or image pools) and ``out/model.json`` (config, trained steps, data set) from ``run/checkpoint.pt``.

    :func:`translate.apply.load_translator` loads the result like any export. An existing
    ``out/model.safetensors`` is replaced only with ``force`` (else ``FileExistsError``); a run
    without a checkpoint is a ``FileNotFoundError``, one of another model a ``ValueError``.
    """
    run, out = Path(run), Path(out)
    if not (run / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{run} holds no checkpoint.pt; give a run folder made by 'translate train'")
    if (out / "model.safetensors").exists() and not force:
        raise FileExistsError(f"{out / 'model.safetensors'} exists; pass --force to overwrite")
    model = model_from_checkpoint(run / "checkpoint.pt")
    if not isinstance(model, Translator):
        raise ValueError(f"{run} holds a {getattr(model, 'registry_name', type(model).__name__)!r} model, not a translator")
    run_cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    extra = {"trained_steps": model.trained_steps, "run": run.name}
    extra.update({k: run_cfg[k] for k in ("size", "load_size") if k in run_cfg})
    if "name" in run_cfg.get("data", {}):  # the data set's name only: its folders are this machine's paths
        extra["data"] = run_cfg["data"]["name"]
    return export_weights(model, out, extra=extra, parts=model.export_parts(), half=True)
