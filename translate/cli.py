"""The ``translate`` command: train a translator (CUT, FastCUT, CycleGAN) on unpaired image folders and translate images.

    translate train horse2zebra --run runs/h2z [--model cut|fastcut|cyclegan] [--data DIR] [--size 256]
                    [--load-size 286] [--generator resnet|unet|mobile] [--ngf 64] [--steps N] [--val 100] [--resume]
    translate train --a photos/ --b paintings/ --name photo2art --run runs/p2a   # any two folders
    translate horse2zebra IMAGES_OR_DIRS... -o OUT [--model RUN] [--force]  # domain A → B
    translate zebra2horse IMAGES_OR_DIRS... -o OUT [--model RUN] [--force]  # domain B → A
    translate a2b / b2a IMAGES_OR_DIRS... -o OUT --model RUN                 # the same for any run
    translate demo [-o out/translate]                    # the shipped model on a bundled photo
    translate eval horse2zebra [--model RUN] [-o OUT] [--split test|val]   # FID/KID, cycle PSNR, OUT/index.html
    translate export RUN -o translate/weights/horse2zebra   # both generators, fp16, to ship
    translate export horse2zebra --onnx -o onnx/            # the generators as ONNX (a2b.onnx, b2a.onnx)
    translate import-cyclegan latest_net_G_A.pth latest_net_G_B.pth -o h2z_official   # the anchor's generators

``--data DIR`` (or ``$ENSO_DATA/NAME``) holds the CycleGAN layout ``trainA/ trainB/ testA/ testB/``.
Training defaults follow the anchor: batch 1, Adam 2e-4 β1 0.5, 200 epochs of horse2zebra's 1334
images, constant for the first half, then linear to 0. Every command that computes takes
``--threads N`` (0, the default: chosen by the size of the work, :mod:`shared.threads`); those that
use a trained translator take ``--device`` too, and their options are the typed
:mod:`translate.options`. Library refusals (``ValueError``, a missing file) print as one line, exit
status 2 (:func:`shared.errors.run_cli`).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence

from shared.config import add_config_args, config_from_args
from shared.errors import UserError, run_cli
from shared.registry import build
from shared.trainer import TrainConfig, Trainer, seed_everything

from .models.cut import CUTConfig, FastCUTConfig
from .models.cyclegan import CycleGANConfig
from .options import ApplyOptions, ComputeOptions, DemoOptions, EvalOptions

#: ``translate train --model NAME`` → its config (the flags of all three are accepted; a flag of another model is refused)
MODELS = {"cyclegan": CycleGANConfig, "cut": CUTConfig, "fastcut": FastCUTConfig}

#: the training defaults that differ from the trainer's (the anchor's recipe for horse2zebra)
TRAIN_DEFAULTS = {
    "steps": 266_800, "batch_size": 1, "lr": 2e-4, "lr_schedule": "linear", "decay_start": 0.5, "ckpt_every": 2000, "log_every": 100,
}
#: command → (data set whose shipped weights it uses, direction)
DIRECTIONS = {"horse2zebra": ("horse2zebra", "ab"), "zebra2horse": ("horse2zebra", "ba"), "a2b": (None, "ab"), "b2a": (None, "ba")}
#: what library code refuses with: the command line prints these as one line (exit status 2)
REFUSALS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)
MODEL_HELP = "run folder of 'translate train', or an export folder"


def add_model_arg(parser: argparse.ArgumentParser, shipped: str | None) -> None:
    """``--model RUN`` (the options' ``model``), required where no weights ship (``shipped`` None)."""
    default = "" if shipped is None else f" (default: the shipped {shipped} weights)"
    parser.add_argument("--model", type=str, default=argparse.SUPPRESS, required=shipped is None, metavar="RUN", help=MODEL_HELP + default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="translate", description="ensō unpaired image-to-image translation (CycleGAN).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = sub.add_parser("train", help="train CycleGAN through the shared trainer on two image folders")
    t.add_argument("name", nargs="?", help="data set name (e.g. horse2zebra): $ENSO_DATA/NAME/trainA|trainB")
    t.add_argument("--name", dest="name_opt", metavar="NAME", help="a name for the data of --a/--b (recorded in the run's config)")
    t.add_argument("--data", type=Path, help="folder holding trainA/ and trainB/ (default: $ENSO_DATA/NAME)")
    t.add_argument("--a", type=Path, help="folder of domain A images (with --b, instead of --data)")
    t.add_argument("--b", type=Path, help="folder of domain B images")
    t.add_argument("--run", type=Path, required=True, help="run folder (checkpoint, metrics, export)")
    t.add_argument("--size", type=int, default=256, help="training crop size (default: 256)")
    t.add_argument("--load-size", type=int, default=None, help="images are resized to this before cropping (default: size·286/256)")
    t.add_argument("--resume", action="store_true", help="continue the run in --run")
    t.add_argument("--model", dest="model_name", choices=sorted(MODELS), default="cyclegan",
                   help="cut / fastcut (contrastive, one generator per direction) or cyclegan (default: cyclegan)")
    t.add_argument("--init", metavar="MODEL",
                   help="start the generators from a trained translator: a shipped name (horse2zebra), an export or a run folder (discriminators start fresh)")
    t.add_argument("--val", type=int, default=None,
                   help="images of each training domain held out for model selection ('translate eval --split val'; "
                        "default: 100, at most a tenth of a folder; 0: none)")
    add_config_args(t, CycleGANConfig)
    add_config_args(t, CUTConfig, skip=tuple(f.name for f in dataclasses.fields(CycleGANConfig)))
    add_config_args(t, TrainConfig, defaults=TRAIN_DEFAULTS)
    e = sub.add_parser("eval", help="FID/KID of translated test images against real ones, cycle PSNR, and an HTML page")
    e.add_argument("dataset", metavar="name", help="data set name (e.g. horse2zebra): $ENSO_DATA/NAME/testA|testB")
    add_model_arg(e, "NAME")
    e.add_argument("-o", "--out", type=str, default=argparse.SUPPRESS, help="evaluation folder (default: RUN/eval)")
    add_config_args(e, EvalOptions, skip=("dataset", "model", "out"))
    m = sub.add_parser("demo", help="the shipped horse2zebra model on a bundled photo, both directions, with an HTML page")
    m.add_argument("-o", "--out", type=str, default=argparse.SUPPRESS, help=f"output folder (default: {DemoOptions.out})")
    add_model_arg(m, "horse2zebra")
    add_config_args(m, DemoOptions, skip=("out", "model"))
    x = sub.add_parser("export", help="a training run → shippable weights (both generators, fp16 safetensors + JSON)")
    x.add_argument("run", help="run folder of 'translate train' (with --onnx also a shipped name, e.g. horse2zebra, or an export folder)")
    x.add_argument("-o", "--out", type=Path, required=True, help="output folder (e.g. translate/weights/horse2zebra)")
    x.add_argument("--force", action="store_true", help="overwrite an existing export")
    x.add_argument("--onnx", action="store_true", help="write each generator as ONNX (fp32, [0, 1] in and out, dynamic size; translate.onnx_export) instead")
    add_config_args(x, ComputeOptions, skip=("device",))
    from .import_cyclegan import add_import_arguments

    add_import_arguments(sub.add_parser("import-cyclegan", help="the official CycleGAN ResNet generators (latest_net_G_A/G_B.pth) → an ensō translator folder"))
    for cmd, (dataset, direction) in DIRECTIONS.items():
        arrow = "A → B" if direction == "ab" else "B → A"
        p = sub.add_parser(cmd, help=f"translate images ({dataset + ' ' if dataset else 'domain '}{arrow}) with a trained model")
        p.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
        p.add_argument("-o", "--out", type=Path, required=True, help="output image (one input) or folder (PNG files)")
        add_model_arg(p, dataset)
        add_config_args(p, ApplyOptions, skip=("direction", "model", "dataset"))
    return parser


def prepare_training(ns: argparse.Namespace):
    """``translate train``'s model, data, trainer config and the run's extra config, from the flags."""
    from shared.data.images import list_images

    from .data import UnpairedImages, dataset_folders, held_out
    from .evaluate import VAL_IMAGES

    load_size = ns.load_size if ns.load_size is not None else round(ns.size * 286 / 256)
    if ns.size < 32:
        raise UserError(f"--size {ns.size} is too small; use 32 or more")
    cfg = config_from_args(TrainConfig, ns, base=dataclasses.replace(TrainConfig(), **TRAIN_DEFAULTS))
    config_cls = MODELS[ns.model_name]
    own = {f.name for f in dataclasses.fields(config_cls)}
    foreign = sorted(f.name for c in MODELS.values() for f in dataclasses.fields(c) if f.name not in own and hasattr(ns, f.name))
    if foreign:
        raise UserError(f"--{foreign[0].replace('_', '-')} is not an option of --model {ns.model_name}; drop it or pick the model it belongs to")
    model_cfg = config_from_args(config_cls, ns, base=config_cls())
    name = ns.name or ns.name_opt or ("custom" if ns.a is not None else None)
    if name is None:
        raise UserError("name the data set (e.g. 'translate train horse2zebra') or pass --a DIR --b DIR")
    folder_a, folder_b = dataset_folders(name, ns.data, ns.a, ns.b)
    def val_of(files):
        return held_out(files, ns.val if ns.val is not None else min(VAL_IMAGES, len(files) // 10))

    val = (val_of(list_images(folder_a)), val_of(list_images(folder_b)))
    data = UnpairedImages(folder_a, folder_b, load_size=load_size, crop=ns.size, exclude=val)
    seed_everything(cfg.seed)
    model = build(ns.model_name, model_cfg)
    if ns.size % model.stride:
        raise UserError(f"--size {ns.size} must be a multiple of {model.stride} for the {model_cfg.generator} generator")
    if ns.init is not None and not ns.resume:
        from .apply import WEIGHTS_DIR, load_translator

        init = ns.init if not (WEIGHTS_DIR / ns.init).is_dir() else None
        try:
            model.warm_start(load_translator(init, ns.init if init is None else "horse2zebra"))
        except REFUSALS as e:
            raise UserError(f"--init {ns.init}: {e}") from e
    extra = {"data": {"name": name, "a": str(folder_a), "b": str(folder_b)}, "size": ns.size, "load_size": load_size,
             "val": {"A": [f.name for f in val[0]], "B": [f.name for f in val[1]]},
             "init": ns.init}
    return model, data, cfg, extra


def train(ns: argparse.Namespace) -> None:
    from .data import dataset_folders

    try:
        model, data, cfg, extra = prepare_training(ns)
    except REFUSALS as e:
        raise UserError(str(e)) from e
    name, (folder_a, folder_b) = extra["data"]["name"], (Path(extra["data"]["a"]), Path(extra["data"]["b"]))
    trainer = Trainer(model, data, cfg, ns.run, resume=ns.resume, extra_config=extra)
    trainer.fit()
    model.trained_steps = trainer.step
    from shared import distributed

    if distributed.is_main():
        from .evaluate import preview_page

        try:  # the page shows test images when the data set has them
            test_a, test_b = dataset_folders(name, ns.data, split="test") if ns.a is None else (folder_a, folder_b)
        except UserError:
            test_a, test_b = folder_a, folder_b
        page = preview_page(model, {"A": test_a, "B": test_b}, ns.run / "web", size=max(ns.size, 64))
        print(f"page of translations: {page}")


def use(ns: argparse.Namespace) -> None:
    """The commands that use or convert a trained translator (all but ``train``)."""
    if ns.command == "eval":
        import json

        from .evaluate import evaluate

        results = evaluate(config_from_args(EvalOptions, ns))
        print(json.dumps({k: v for k, v in results.items() if k != "generator"}, indent=2))
    elif ns.command == "demo":
        from .demo import run_demo

        run_demo(config_from_args(DemoOptions, ns))
    elif ns.command == "import-cyclegan":
        from .import_cyclegan import run_import

        run_import(ns)
    elif ns.command == "export":
        from shared.threads import use_threads

        use_threads(config_from_args(ComputeOptions, ns).threads, None)
        if ns.onnx:
            from .onnx_export import export_translator_onnx

            for name, diff in export_translator_onnx(ns.run, ns.out, ns.force).items():
                print(f"wrote {ns.out / name} (onnxruntime matches PyTorch to {diff:.1e})")
        else:
            from .shipping import export_translator

            print(f"wrote {export_translator(Path(ns.run), ns.out, ns.force)}")
    else:
        from .apply import translate_files

        dataset, direction = DIRECTIONS[ns.command]
        translate_files(ns.inputs, ns.out, config_from_args(ApplyOptions, ns, base=ApplyOptions(direction=direction, dataset=dataset or "custom")))


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if ns.command == "train":
        train(ns)
        return 0
    try:
        use(ns)
    except REFUSALS as e:
        raise UserError(str(e)) from e
    return 0


def entry_point() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry_point()
