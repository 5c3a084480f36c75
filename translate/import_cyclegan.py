"""The official CycleGAN generators → an ensō translator folder (``translate import-cyclegan``).

junyanz/pytorch-CycleGAN-and-pix2pix saves each generator as a state dict
(``latest_net_G_A.pth``: A → B, ``latest_net_G_B.pth``: B → A). Its ``ResnetGenerator`` is one
flat ``model`` Sequential; ensō's (:class:`translate.models.generators.ResnetGenerator`) has the
same layers in ``encoder`` / ``bottleneck`` / ``decoder``. For ``n`` residual blocks:

==========================================  =========================  =============================
anchor key                                  ensō key                   layer
==========================================  =========================  =============================
``model.1`` / ``model.4`` / ``model.7``     ``encoder.1/4/7``          7×7 conv, two stride-2 convs
``model.{10+i}.conv_block.1`` / ``.5``      ``bottleneck.{i}.f.1/5``   the block's two 3×3 convs
``model.{10+n}`` / ``model.{13+n}``         ``decoder.0`` / ``.3``     the two transposed convs
``model.{17+n}``                            ``decoder.7``              the last 7×7 conv
==========================================  =========================  =============================

(with ``--use_dropout`` a block's second conv is ``conv_block.6``: dropout is identity at
inference). The generators are the anchor's defaults for CycleGAN: ``--netG resnet_9blocks`` or
``resnet_6blocks`` (detected), ``--norm instance`` (no affine parameters), any ``--ngf``, 3
channels in and out. Instance norm keeps no statistics, but checkpoints written by old PyTorch
versions hold ``running_mean`` / ``running_var`` / ``num_batches_tracked`` for it (the anchor's
issue #262): they are dropped, as the anchor's own loader does. Anything else (batch norm, U-Net
generators, other widths of input or output) is refused.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from shared.checkpoint import export_weights, load_state_dict_file

#: InstanceNorm statistics that old PyTorch versions saved and no instance norm uses
STALE_STATS = ("running_mean", "running_var", "num_batches_tracked")


def read_generator(path: Path) -> dict[str, torch.Tensor]:
    """A generator file → its state dict, loaded with ``weights_only=True``, ``module.`` prefixes
    (DataParallel) and :data:`STALE_STATS` dropped. ``ValueError`` for a missing, unreadable or
    non-state-dict file."""
    raw = load_state_dict_file(path, "give a latest_net_G_A.pth / latest_net_G_B.pth")
    state = {k.removeprefix("module."): v for k, v in raw.items()}
    return {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in STALE_STATS}


def resnet_layout(state: dict[str, torch.Tensor], source: str = "the generator") -> tuple[int, int, int]:
    """(ngf, n_blocks, index of a block's second conv: 5, or 6 with dropout) of the anchor's
    ResnetGenerator state dict; ``ValueError`` for any other network."""
    if "model.1.weight" not in state or not any(".conv_block." in k for k in state):
        raise ValueError(f"{source} is no ResNet generator of pytorch-CycleGAN-and-pix2pix (no model.1.weight and model.N.conv_block.*); "
                         "only --netG resnet_9blocks / resnet_6blocks import")
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    if blocks != list(range(10, 10 + len(blocks))):
        raise ValueError(f"{source}'s residual blocks sit at model.{blocks[0]}..{blocks[-1]}, not from model.10 on; it is no anchor ResnetGenerator")
    second = 6 if "model.10.conv_block.6.weight" in state else 5
    ngf, channels = state["model.1.weight"].shape[:2]
    if channels != 3:
        raise ValueError(f"{source} takes {channels}-channel images; ensō translates RGB (--input_nc 3 --output_nc 3)")
    return int(ngf), len(blocks), second


def enso_keys(state: dict[str, torch.Tensor], n_blocks: int, second: int) -> dict[str, torch.Tensor]:
    """The anchor's ``model.*`` keys → ensō's ``encoder`` / ``bottleneck`` / ``decoder`` keys (the
    module docstring's table); keys outside the table are kept as they are, for the caller's check."""
    names = {1: "encoder.1", 4: "encoder.4", 7: "encoder.7", 10 + n_blocks: "decoder.0", 13 + n_blocks: "decoder.3", 17 + n_blocks: "decoder.7"}
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"model\.(\d+)\.(weight|bias)", key)
        b = re.fullmatch(r"model\.(\d+)\.conv_block\.(\d+)\.(weight|bias)", key)
        if m and int(m.group(1)) in names:
            key = f"{names[int(m.group(1))]}.{m.group(2)}"
        elif b and b.group(2) in ("1", str(second)):
            key = f"bottleneck.{int(b.group(1)) - 10}.f.{1 if b.group(2) == '1' else 5}.{b.group(3)}"
        out[key] = value
    return out


def import_generators(g_a: Path, g_b: Path):
    """The anchor's G_A (A → B) and G_B (B → A) files → an ensō ``cyclegan`` model (eval mode) whose
    ``g_ab`` and ``g_ba`` are them; its discriminators stay as initialised (no export keeps them).
    ``ValueError`` when either file is refused or the two differ in ngf or blocks."""
    from shared.registry import build

    layouts, states = [], []
    for path in (g_a, g_b):
        state = read_generator(path)
        layouts.append(resnet_layout(state, str(path)))
        states.append(enso_keys(state, *layouts[-1][1:]))
    (ngf, n_blocks, _), (ngf_b, n_blocks_b, _) = layouts
    if (ngf, n_blocks) != (ngf_b, n_blocks_b):
        raise ValueError(f"{g_a} (ngf {ngf}, {n_blocks} blocks) and {g_b} (ngf {ngf_b}, {n_blocks_b} blocks) are not one CycleGAN's pair; "
                         "give the G_A and G_B of one run")
    model = build("cyclegan", {"generator": "resnet", "n_blocks": n_blocks, "ngf": ngf, "upsample": "transposed"})
    for path, state, generator in zip((g_a, g_b), states, (model.g_ab, model.g_ba)):
        own = generator.state_dict()
        odd = sorted(set(state) ^ set(own))
        misfit = [k for k in own if k in state and state[k].shape != own[k].shape]
        if odd or misfit:
            what = (f"{'unexpected' if odd[0] in state else 'missing'} {odd[0]!r}" if odd
                    else f"{misfit[0]!r} is {tuple(state[misfit[0]].shape)}, not {tuple(own[misfit[0]].shape)}")
            raise ValueError(f"{path} does not fit the anchor's ResNet generator with instance norm, ngf {ngf}, {n_blocks} blocks ({what}); "
                             "batch-norm (--norm batch) and resize-upsampling generators cannot be imported")
        generator.load_state_dict(state)
    return model.eval()


def import_cyclegan(g_a: Path, g_b: Path, out: Path, force: bool = False) -> Path:
    """Convert (:func:`import_generators`) and write ``out/model.safetensors`` (both generators,
    float32: the anchor's outputs exactly) + ``out/model.json``, which ``translate horse2zebra /
    eval / demo --model out`` read; returns the weights file. Nothing is written when an input is
    refused (``ValueError``) or ``out`` already holds weights without ``force`` (``FileExistsError``)."""
    g_a, g_b, out = Path(g_a), Path(g_b), Path(out)
    if (out / "model.safetensors").exists() and not force:
        raise FileExistsError(f"{out / 'model.safetensors'} exists; pass --force to overwrite")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder for the translator")
    model = import_generators(g_a, g_b)
    extra = {"imported_from": {"repository": "junyanz/pytorch-CycleGAN-and-pix2pix", "G_A": g_a.name, "G_B": g_b.name}}
    return export_weights(model, out, extra=extra, parts=model.export_parts())


# -- the command ------------------------------------------------------------------------------------
def add_import_arguments(parser) -> None:
    """The options of ``translate import-cyclegan``."""
    from shared.config import add_config_args

    from .options import ComputeOptions

    parser.add_argument("g_a", type=Path, metavar="G_A.pth", help="the anchor's A → B generator (latest_net_G_A.pth)")
    parser.add_argument("g_b", type=Path, metavar="G_B.pth", help="the anchor's B → A generator (latest_net_G_B.pth)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output translator folder, for --model of horse2zebra/zebra2horse/a2b/b2a/eval/demo")
    parser.add_argument("--force", action="store_true", help="overwrite an existing translator in --out")
    add_config_args(parser, ComputeOptions, skip=("device",))


def run_import(ns) -> Path:
    """``translate import-cyclegan``: :func:`import_cyclegan` on ``--threads`` CPU threads (the
    command line prints its refusals as one line)."""
    from shared.config import config_from_args
    from shared.threads import use_threads

    from .options import ComputeOptions

    use_threads(config_from_args(ComputeOptions, ns).threads, None)
    path = import_cyclegan(ns.g_a, ns.g_b, ns.out, ns.force)
    print(f"wrote {path} (translate horse2zebra IMAGES -o OUT --model {ns.out})")
    return path
