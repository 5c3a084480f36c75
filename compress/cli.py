"""The ``compress`` command: encode, decode, evaluate and train learned image codecs.

    compress demo                                 # round trip of a bundled photo, beside JPEG
    compress encode photo.png -o photo.enso [--quality 0.5 | --target-bpp 0.3] [--model mean_scale_cc]
    compress encode photos/ -o encoded/           # every image of a folder, with a progress bar
    compress encode photo.png -o photo.enso --refine 100  # slower encoding, lower rate-distortion cost (compress.refine)
    compress decode photo.enso -o photo.png
    compress eval --data kodak/ --codecs ours,jpeg,webp,avif,jpeg2000,jxl -o rd/
    compress export RUN -o compress/weights/mean_scale   # fp16 weights to ship
    compress export RUN -o compress/weights/mean_scale_msssim --base mean_scale   # only what differs from mean_scale
    compress export mean_scale_cc --onnx -o onnx/   # g_a and g_s as ONNX (entropy coding stays in Python)
    compress import-compressai bmshj2018-factorized-prior-3-5c6f152b.pth.tar --arch bmshj2018-factorized --lmbda 0.0067 -o factorized_q3   # a CompressAI checkpoint
    compress train --data DIR [--data DIR ...] --run RUN [--model mean_scale] [--crop 256] [--steps N] [--resume]
    compress train ... --init mean_scale --distortion ms-ssim --train-only transforms   # a variant
    compress train ... --model mean_scale_cc --init mean_scale --train-only context   # a context model on a trained codec
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence, TypeVar

from shared.config import add_config_args, config_from_args
from shared.data.degradations import DegradationConfig, Degraded
from shared.data.images import ImageFolder
from shared.errors import UserError, run_cli
from shared.registry import build, make_config
from shared.threads import use_threads
from shared.trainer import TrainConfig, Trainer, seed_everything

from .models.perceptual_decoder import PerceptualDecoderConfig
from .options import DecodeOptions, DemoOptions, EncodeOptions, ThreadOptions, add_eval_arguments, options_from_args

O = TypeVar("O", bound=ThreadOptions)

CODECS = ("mean_scale", "mean_scale_cc", "mean_scale_cc_perceptual", "hyperprior", "factorized")
#: the training defaults that differ from the trainer's (Minnen/CompressAI-style recipe, shortened)
TRAIN_DEFAULTS = {"steps": 8000, "batch_size": 8, "lr": 5e-4, "lr_schedule": "linear", "decay_start": 0.35, "ckpt_every": 100, "grad_clip": 1.0}


CPU_CODING = ("Coding runs on the CPU, on the deterministic integer path: a file decodes to the same pixels "
              "under any thread count and on any machine.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compress", description="ensō learned image compression.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    e = sub.add_parser("encode", help="images → .enso files", description="Images → .enso files. " + CPU_CODING)
    e.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    e.add_argument("-o", "--out", type=Path, required=True, help="output file (one input) or folder")
    e.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_config_args(e, EncodeOptions)
    x = sub.add_parser("export", help="a training run → shippable weights (fp16 safetensors + JSON, entropy tables included)")
    x.add_argument("run", help="run folder of 'compress train' (with --onnx also a shipped codec name or exported folder)")
    x.add_argument("-o", "--out", type=Path, required=True, help="output folder, e.g. compress/weights/mean_scale")
    x.add_argument("--force", action="store_true", help="replace existing weights in --out")
    x.add_argument("--base", help="shipped codec name or exported folder: write only the weights that differ from it (a variant)")
    x.add_argument("--onnx", action="store_true", help="write g_a.onnx and g_s.onnx (fp32, dynamic size, quality gains inside; see compress.onnx_export) instead")
    add_config_args(x, ThreadOptions)
    from .import_compressai import add_import_arguments

    i = sub.add_parser("import-compressai", help="a CompressAI checkpoint (bmshj2018-factorized/-hyperprior, mbt2018-mean) → an ensō codec folder")
    add_import_arguments(i)
    add_config_args(i, ThreadOptions)
    m = sub.add_parser("demo", help="round trip a bundled photo, beside JPEG at the same size")
    m.add_argument("-o", "--out", type=Path, default=Path("out/compress"), help="output folder (default: out/compress)")
    add_config_args(m, DemoOptions)
    add_eval_arguments(sub.add_parser("eval", help="rate–distortion evaluation of codecs on a folder of images"))
    d = sub.add_parser("decode", help=".enso files → PNG images", description=".enso files → PNG images. " + CPU_CODING)
    d.add_argument("inputs", nargs="+", type=Path, help=".enso files or folders")
    d.add_argument("-o", "--out", type=Path, required=True, help="output .png (one input) or folder")
    d.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_config_args(d, DecodeOptions)
    t = sub.add_parser("train", help="train a codec through the shared trainer on random crops of photo folders")
    t.add_argument("--data", type=Path, action="append", required=True, help="folder of training photos (repeatable)")
    t.add_argument("--run", type=Path, required=True, help="run folder (checkpoint, metrics, export)")
    t.add_argument("--model", choices=CODECS, default="mean_scale")
    t.add_argument("--crop", type=int, default=256, help="random crop size (divisible by 64)")
    t.add_argument("--resume", action="store_true", help="continue the run in --run")
    t.add_argument("--init", help="start from these weights (a shipped codec name or exported folder of the same --model), "
                                  "e.g. to fine-tune a variant; --lambdas etc. still come from the flags (ignored with --resume)")
    # every codec's fields (PerceptualDecoderConfig extends ContextConfig, which extends CodecConfig); --model-X: the old spelling
    add_config_args(t, PerceptualDecoderConfig, hidden_alias_prefix="model_")
    add_config_args(t, DegradationConfig)
    add_config_args(t, TrainConfig, defaults=TRAIN_DEFAULTS)
    return parser


def train(ns: argparse.Namespace) -> None:
    if ns.crop % 64:
        raise UserError(f"--crop {ns.crop} must be a multiple of 64 (the codec downsamples by 64)")
    import dataclasses

    cfg = config_from_args(TrainConfig, ns, base=dataclasses.replace(TrainConfig(), **TRAIN_DEFAULTS))
    base_cfg = make_config(ns.model)
    own = {f.name for f in dataclasses.fields(base_cfg)}
    foreign = [f.name for f in dataclasses.fields(PerceptualDecoderConfig) if f.name not in own and hasattr(ns, f.name)]
    if foreign:
        raise UserError(f"--{foreign[0].replace('_', '-')} is not an option of --model {ns.model}")
    try:
        model_cfg = config_from_args(type(base_cfg), ns, base=base_cfg)
    except ValueError as e:
        raise UserError(str(e)) from None
    if hasattr(model_cfg, "lpips_weight") and model_cfg.lpips_weight > 0:
        from shared.metrics.perceptual import lpips_model

        lpips_model()  # a missing LPIPS backbone: one line before the run folder is made
    try:
        degradation = config_from_args(DegradationConfig, ns)
    except ValueError as e:
        raise UserError(str(e)) from None
    data = ImageFolder(ns.data, crop=ns.crop, mode="RGB")
    if degradation.degrade or degradation.synthetic:
        data = Degraded(data, degradation.degrade, degradation.synthetic)
    seed_everything(cfg.seed)
    model = build(ns.model, model_cfg)
    if ns.init is not None and not ns.resume:
        initialise_from(model, ns.init)
    extra = {"data": [str(d) for d in ns.data], "crop": ns.crop, "degradation": dataclasses.asdict(degradation)} | ({"init": str(ns.init)} if ns.init is not None else {})
    Trainer(model, data, cfg, ns.run, resume=ns.resume, extra_config=extra).fit()


def initialise_from(model, source: str) -> None:
    """Copy the weights of ``source`` (a shipped codec name or exported folder) into ``model``, except
    its λ levels, which stay the model's own config."""
    from shared.checkpoint import load_exported

    from .codec import weights_folder

    src = load_exported(weights_folder(source))
    extends = src.registry_name == getattr(model, "extends", None)  # e.g. mean_scale_cc from mean_scale: its context starts untrained
    if src.registry_name != model.registry_name and not extends:
        raise UserError(f"--init {source} is a {src.registry_name!r} codec; train --model {src.registry_name} to start from it")
    training_only = getattr(model, "untrained_at_init", None)  # a perceptual decoder's discriminator: never copied
    state = {k: v for k, v in src.state_dict().items() if training_only is None or not training_only(k)} | {"lambdas": model.lambdas}
    strict = not extends and training_only is None
    try:
        missing, unexpected = model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise UserError(f"--init {source} does not fit this model ({str(e).strip().splitlines()[0]}); give the same --N/--M and number of --lambdas") from None
    fresh = getattr(model, "new_at_init", None) or training_only or model.is_context  # the parts a model that extends another adds
    if not strict and (unexpected or any(not fresh(k) for k in missing)):
        raise UserError(f"--init {source} does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})")


def _options(cls: type[O], ns: argparse.Namespace) -> O:
    """The command's options from its flags, with torch's threads set from them (a codec's work is large: 0 takes every core)."""
    options = options_from_args(cls, ns)
    use_threads(options.threads)
    return options


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if ns.command == "train":
        train(ns)
    elif ns.command == "encode":
        from .io import encode_files

        encode_files(ns.inputs, ns.out, _options(EncodeOptions, ns), ns.force)
    elif ns.command == "export" and ns.onnx:
        from .onnx_export import export_codec_onnx

        if ns.base is not None:
            raise UserError("--base writes shippable weights; it does not apply to --onnx")
        _options(ThreadOptions, ns)
        try:
            differences = export_codec_onnx(ns.run, ns.out, ns.force)
        except ValueError as e:
            raise UserError(str(e)) from None
        for name, diff in differences.items():
            print(f"wrote {ns.out / name} (onnxruntime matches PyTorch to {diff:.1e})")
    elif ns.command == "export":
        from .shipping import export_codec

        if (ns.out / "model.safetensors").exists() and not ns.force:
            raise UserError(f"{ns.out} already holds weights; pass --force to replace them")
        from .codec import weights_folder

        _options(ThreadOptions, ns)
        base = weights_folder(ns.base) if ns.base is not None else None
        print(f"wrote {export_codec(Path(ns.run), ns.out, base)}")
    elif ns.command == "import-compressai":
        from .import_compressai import run_import

        _options(ThreadOptions, ns)
        run_import(ns)
    elif ns.command == "demo":
        from .demo import run_demo

        run_demo(ns.out, _options(DemoOptions, ns))
    elif ns.command == "eval":
        from .evaluate import run_eval

        run_eval(ns)
    elif ns.command == "decode":
        from .io import decode_files

        decode_files(ns.inputs, ns.out, _options(DecodeOptions, ns), ns.force)
    return 0


def entry_point() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry_point()
