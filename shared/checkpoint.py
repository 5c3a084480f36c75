"""Checkpoints (everything needed to resume) and exported inference weights.

* ``checkpoint.pt``: model, optimisers, schedulers, step, RNG states and configs, as plain tensors
  and containers only, so it loads with ``torch.load(weights_only=True)``; written through a
  temporary file and a rename, so a killed run never leaves half a checkpoint.
* ``model.safetensors`` + ``model.json``: the inference export, the weights and the registry
  name and config needed to rebuild the model (:func:`load_exported`). An export may hold only
  what differs from another export, its base (:func:`keep_changes_from`), e.g. a fine-tuned
  variant that shares most of its weights with a shipped model.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors_bytes

from .config import atomic_write_bytes, save_json
from .errors import UserError

FORMAT = "enso-checkpoint/1"


def rng_state() -> dict[str, Any]:
    """The state of every RNG a run draws from, as weights_only-safe values."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (plus the format tag) with ``torch.save``."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a missing or foreign file is a :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or not a torch file
        raise UserError(f"checkpoint {path} cannot be read ({type(e).__name__}); it is damaged or not an ensō checkpoint") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path} is not an ensō checkpoint (expected format {FORMAT})")
    return ckpt


def model_from_checkpoint(path: str | os.PathLike) -> torch.nn.Module:
    """Rebuild the model of a ``checkpoint.pt`` (for a run stopped before its export), on CPU."""
    from .registry import build

    ckpt = load_checkpoint(path)
    meta = ckpt["config"]["model"]
    model = build(meta["name"], meta["config"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise UserError(f"{path} does not fit model {meta['name']!r}: {str(e).strip().splitlines()[0]}") from None
    model.trained_steps = int(ckpt["step"])
    return model


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Write ``tensors`` as a safetensors file, atomically and readable as the umask allows
    (safetensors' own ``save_file`` creates files readable by their owner only)."""
    atomic_write_bytes(path, save_safetensors_bytes(tensors))


def export_weights(
    model: torch.nn.Module,
    folder: str | os.PathLike,
    extra: dict[str, Any] | None = None,
    parts: Sequence[str] | None = None,
    half: bool = False,
) -> Path:
    """Write ``model.safetensors`` and ``model.json`` (registry name + config) into ``folder``.

    ``parts``: only the submodules with these names are written (e.g. a GAN's generators, without
    its discriminators), and recorded in ``model.json`` so :func:`load_exported` accepts the rest
    missing. ``half``: floating-point tensors are stored as fp16 (loaded back as fp32).
    """
    from .registry import describe

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if parts is not None:
        unknown = [p for p in parts if not any(k == p or k.startswith(p + ".") for k in state)]
        if unknown:
            raise ValueError(f"the model has no parts {unknown}")
        state = {k: v for k, v in state.items() if k.split(".")[0] in parts}
    tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous() for k, v in state.items()}
    save_safetensors(tensors, folder / "model.safetensors")
    meta = {**describe(model), **({"parts": list(parts)} if parts is not None else {}), **(extra or {})}
    save_json(meta, folder / "model.json")
    return folder / "model.safetensors"


def load_exported(folder: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a model from :func:`export_weights`'s folder (or a run folder holding ``export/``)."""
    from .registry import build

    folder = Path(folder)
    if (folder / "export" / "model.json").is_file():
        folder = folder / "export"
    meta_path, weights = folder / "model.json", folder / "model.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise UserError(f"{folder} holds no exported model (model.json + model.safetensors); train one first ('ae train' or 'compress train') or give a folder written by export")
    meta = json.loads(meta_path.read_text())
    model = build(meta["name"], meta["config"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in _with_base(folder, meta, load_file(str(weights))).items()}
    parts = meta.get("parts")
    try:
        if parts is None:
            model.load_state_dict(state)
        else:  # a partial export: every tensor of the named parts, nothing else
            expected = {k for k in model.state_dict() if k.split(".")[0] in parts}
            if set(state) != expected:
                odd = sorted(expected.symmetric_difference(state))
                raise RuntimeError(f"expected exactly the tensors of {parts}; {len(odd)} differ, e.g. {odd[0]!r}")
            model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"weights in {weights} do not fit model {meta['name']!r}: {first}") from None
    if "trained_steps" in meta:
        model.trained_steps = meta["trained_steps"]
    return model.to(device).eval()


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over named tensors: names in sorted order, each with its dtype, shape and bytes."""
    h = hashlib.sha256()
    for name, t in sorted(tensors.items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def full_export(base: str | os.PathLike) -> Path:
    """The weights file of ``base`` if it holds an export (a full one or a variant of another: either can serve as a base), else a UserError."""
    base = Path(base)
    if not (base / "model.safetensors").is_file() or not (base / "model.json").is_file():
        raise UserError(f"base {base} holds no exported model (model.json + model.safetensors)")
    return base / "model.safetensors"


def exported_tensors(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of the export in ``folder``, those it takes from its base (and its base's base) included."""
    folder = Path(folder)
    return _with_base(folder, json.loads((folder / "model.json").read_text()), load_file(str(folder / "model.safetensors")))


def keep_changes_from(folder: str | os.PathLike, base: str | os.PathLike) -> int:
    """Rewrite the export in ``folder`` to hold only the tensors that differ from the export in
    ``base`` (in name, dtype, shape or value), recording base's path (relative to ``folder``) and
    the SHA-256 of the tensors it takes from base (:func:`tensors_sha256`) in ``model.json``;
    returns how many tensors were kept. :func:`load_exported` then takes the missing tensors from
    ``base`` and refuses a base in which any of them changed since (base's other tensors may change:
    a variant that ships its own transforms survives new transforms in its base)."""
    folder = Path(folder)
    base_file = full_export(base)
    own, theirs = load_file(str(folder / "model.safetensors")), exported_tensors(base_file.parent)
    changed = {k: v for k, v in own.items()
               if k not in theirs or v.dtype != theirs[k].dtype or v.shape != theirs[k].shape or not torch.equal(v, theirs[k])}
    save_safetensors(changed, folder / "model.safetensors")
    meta = json.loads((folder / "model.json").read_text())
    taken = {k: v for k, v in theirs.items() if k not in changed}
    meta.pop("base_sha256", None)
    meta.update(base=os.path.relpath(Path(base).resolve(), folder.resolve()), base_tensors_sha256=tensors_sha256(taken))
    save_json(meta, folder / "model.json")
    return len(changed)


def _with_base(folder: Path, meta: dict[str, Any], state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` completed from the base export ``meta`` names (:func:`keep_changes_from`), if any."""
    if "base" not in meta:
        return state
    base = (folder / meta["base"]).resolve()
    base_file = base / "model.safetensors"
    if not base_file.is_file():
        raise UserError(f"{folder} holds changes to the weights in {base}, which are missing; restore them or export {folder} in full")
    taken = {k: v for k, v in exported_tensors(base).items() if k not in state}
    if tensors_sha256(taken) != meta.get("base_tensors_sha256"):
        raise UserError(f"{folder} holds changes to other weights than those now in {base}; export it again against them")
    return {**taken, **state}


def load_state_dict_file(path: str | os.PathLike, hint: str) -> dict[str, torch.Tensor]:
    """Another project's saved state dict (names → tensors, e.g. a CompressAI or CycleGAN
    checkpoint), loaded with ``weights_only=True`` so no code in the pickle runs; a training
    script's ``{"state_dict": ...}`` is unwrapped. A missing, unreadable or non-state-dict file is a
    ``ValueError`` ending in ``hint`` (what to give instead)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist; {hint}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated, or holding more than tensors and containers
        raise ValueError(f"{path} cannot be read as a PyTorch checkpoint ({type(e).__name__}); {hint}") from None
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not raw or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in raw.items()):
        raise ValueError(f"{path} holds no state dict (names → tensors); {hint}")
    return dict(raw)
