"""The ``ae`` command: train, evaluate and plot each use of the autoencoder family.

    ae list
    ae train generation -o out/ [--steps 3000] [--precision auto] [--resume]
    ae eval generation -o out/        # → out/generation/numbers.json
    ae plot generation -o out/        # → out/generation/generation.png
    ae demo generation -o out/        # all three (on the use's short demo schedule, if it has one)

Scale out with ``torchrun --nproc-per-node N -m shared.cli train USE -o out/``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .config import add_config_args, config_from_args, from_dict, save_config
from .errors import UserError, run_cli
from .trainer import TrainConfig

COMMANDS = {
    "train": "train the use's model(s) through the shared trainer into OUT/USE/runs/",
    "eval": "write the use's numbers to OUT/USE/numbers.json",
    "plot": "draw the use's figure to OUT/USE/USE.png",
    "demo": "train, eval and plot in one go",
}


def build_parser() -> argparse.ArgumentParser:
    from .uses import USES

    parser = argparse.ArgumentParser(prog="ae", description="ensō autoencoders: train, evaluate and plot each use.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the uses and the registered models")
    for cmd, text in COMMANDS.items():
        p = sub.add_parser(cmd, help=text, description=text)
        uses = p.add_subparsers(dest="use", required=True, metavar="USE")
        for name, use in sorted(USES.items()):
            u = uses.add_parser(name, help=use.summary, description=f"{use.summary}. {text}.")
            u.add_argument("-o", "--out", type=Path, default=Path("out"), help="output folder (default: out)")
            add_config_args(u, use.config_cls, defaults=use.demo_config if cmd == "demo" else None)
            if cmd in ("train", "demo"):
                u.add_argument("--resume", action="store_true", help="continue the runs already in OUT/USE/runs/")
                add_config_args(u, TrainConfig, defaults={**use.default_train, **(use.demo_train if cmd == "demo" else {})})
    return parser


def _use_config(use, ns: argparse.Namespace, fresh: bool):
    """The use's config: flags over the one saved at training time (eval/plot) or over defaults."""
    saved = use.folder(ns.out) / "use_config.json"
    base = use.config_cls(**use.demo_config) if ns.command == "demo" else None
    if not fresh and saved.is_file():
        base = from_dict(use.config_cls, json.loads(saved.read_text()))
    return config_from_args(use.config_cls, ns, base=base)


def main(argv: Sequence[str] | None = None) -> int:
    from .registry import entry, names
    from .uses import USES, get_use

    ns = build_parser().parse_args(argv)
    if ns.command == "list":
        print("uses:")
        for name, use in sorted(USES.items()):
            print(f"  {name:16s} {use.summary}")
        print("models:")
        for name in names():
            print(f"  {name:16s} {entry(name).summary}")
        return 0
    use = get_use(ns.use)
    if ns.out.exists() and not ns.out.is_dir():
        raise UserError(f"-o {ns.out} is a file; give a folder")
    if ns.command in ("train", "demo"):
        cfg = _use_config(use, ns, fresh=not getattr(ns, "resume", False))
        train = config_from_args(TrainConfig, ns, base=use.train_config(**(use.demo_train if ns.command == "demo" else {})))
        save_config(cfg, use.folder(ns.out) / "use_config.json")
        use.train(cfg, train, ns.out, resume=ns.resume)
    else:
        cfg = _use_config(use, ns, fresh=False)
    from . import distributed

    if not distributed.is_main():
        return 0
    if ns.command in ("eval", "demo"):
        path = use.write_numbers(cfg, ns.out)
        print(path.read_text().strip())
        print(f"numbers: {path}")
    if ns.command in ("plot", "demo"):
        print(f"figure: {use.plot(cfg, ns.out)}")
    return 0


def entry_point() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry_point()
