"""The ``ae`` command: train, evaluate and plot each use of the autoencoder family.

    ae list
    ae train generation --run out/generation [--steps 3000] [--precision auto] [--resume]
    ae eval generation --run out/generation    # → out/generation/numbers.json
    ae plot generation --run out/generation    # → out/generation/generation.png
    ae demo generation -o out/generation       # all three (on the use's short demo schedule, if it has one)

``--run DIR`` is the use's folder: ``runs/`` (one training run per model), ``use_config.json``,
``numbers.json`` and the figure. ``-o OUT`` on train/eval/plot is the old spelling of
``--run OUT/USE``. Scale out with ``torchrun --nproc-per-node N -m shared.cli train USE --run DIR``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .compute_options import ComputeOptions
from .config import add_config_args, atomic_write_bytes, config_from_args, from_dict, save_config
from .errors import UserError, run_cli
from .trainer import TrainConfig

COMMANDS = {
    "train": "train the use's model(s) through the shared trainer into RUN/runs/",
    "eval": "write the use's numbers to RUN/numbers.json",
    "plot": "draw the use's figure to RUN/USE.png",
    "demo": "train, eval and plot in one go into OUT",
}
RUN_HELP = "the use's folder: runs/, use_config.json, numbers.json and the figure (default: out/USE)"


def build_parser() -> argparse.ArgumentParser:
    from .uses import USES

    parser = argparse.ArgumentParser(prog="ae", description="ensō autoencoders: train, evaluate and plot each use.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the uses and the registered models")
    for cmd, text in COMMANDS.items():
        p = sub.add_parser(cmd, help=text, description=text)
        uses = p.add_subparsers(dest="use", required=True, metavar="USE")
        for name, use in sorted(USES.items()):
            where = "" if cmd in ("train", "demo") or use.eval_on_device else " This use evaluates and plots on the CPU, whatever --device says."
            u = uses.add_parser(name, help=use.summary, description=f"{use.summary}. {text}.{where}")
            if cmd == "demo":
                u.add_argument("-o", "--out", type=Path, default=None, help=f"output folder, the use's folder (default: out/{name})")
            else:
                u.add_argument("--run", type=Path, default=None, help=RUN_HELP)
                u.add_argument("-o", "--out", type=Path, default=None, help=argparse.SUPPRESS)  # the old spelling: --run OUT/USE
            add_config_args(u, use.config_cls, defaults=use.demo_config if cmd == "demo" else None)
            if cmd in ("train", "demo"):
                u.add_argument("--resume", action="store_true", help="continue the runs already in RUN/runs/")
                add_config_args(u, TrainConfig, defaults={**use.default_train, **(use.demo_train if cmd == "demo" else {})})
            else:
                add_config_args(u, ComputeOptions)
    return parser


def run_folder(ns: argparse.Namespace) -> Path:
    """The use's folder the command works in: demo's ``-o``, else ``--run``, else ``-o``/USE, else out/USE."""
    if ns.command == "demo":
        run = ns.out if ns.out is not None else Path("out") / ns.use
    elif ns.run is not None and ns.out is not None:
        raise UserError("give --run DIR (the use's folder) or the old -o OUT (meaning --run OUT/USE), not both")
    else:
        run = ns.run if ns.run is not None else (ns.out if ns.out is not None else Path("out")) / ns.use
    flag = "-o" if ns.command == "demo" or ns.run is None and ns.out is not None else "--run"
    for p in (run, *run.parents):
        if p.exists() and not p.is_dir():
            raise UserError(f"{p} is a file; give {flag} a folder")
    return run


def _use_config(use, ns: argparse.Namespace, run: Path, fresh: bool):
    """The use's config: flags over the one saved at training time (eval/plot, --resume) or over defaults."""
    saved = run / "use_config.json"
    base = from_dict(use.config_cls, use.demo_config) if ns.command == "demo" else None
    if not fresh and saved.is_file():
        base = from_dict(use.config_cls, json.loads(saved.read_text()))
    return config_from_args(use.config_cls, ns, base=base)


def _files(folder: Path) -> set[tuple[str, int, int]]:
    return {(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def _folders(run: Path) -> set[Path]:
    """``run`` and every folder inside it."""
    return {run, *(p for p in run.rglob("*") if p.is_dir())} if run.is_dir() else set()


def _train(use, cfg, train: TrainConfig, run: Path, resume: bool) -> None:
    """Save the use's config beside its runs and train. A failure before training changed anything in
    ``run/runs`` (a refused run, a missing file) leaves the folder as it was: the old config, or none."""
    saved = run / "use_config.json"
    parents = [p for p in reversed(run.parents) if not p.exists()]
    folders, before, old = _folders(run), _files(run / "runs"), saved.read_bytes() if saved.is_file() else None
    save_config(cfg, saved)
    try:
        use.train(cfg, train, run, resume=resume)
    except BaseException:
        if _files(run / "runs") == before:
            if old is None:
                saved.unlink(missing_ok=True)
            else:
                atomic_write_bytes(saved, old)
            for p in sorted(_folders(run) - folders, key=lambda p: len(p.parts), reverse=True) + parents[::-1]:
                if p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
        raise


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
    run = run_folder(ns)
    if ns.command in ("train", "demo"):
        cfg = _use_config(use, ns, run, fresh=not ns.resume)
        train = config_from_args(TrainConfig, ns, base=use.train_config(**(use.demo_train if ns.command == "demo" else {})))
        _train(use, cfg, train, run, ns.resume)
        device = train.device
    else:
        cfg = _use_config(use, ns, run, fresh=False)
        compute = config_from_args(ComputeOptions, ns)
        from .threads import use_threads

        use_threads(compute.threads)
        device = compute.device
    from . import distributed

    if not distributed.is_main():
        return 0
    kw = {}
    if use.eval_on_device:
        from .precision import resolve_device

        kw["device"] = resolve_device(device)
    if ns.command in ("eval", "demo"):
        path = use.write_numbers(cfg, run, **kw)
        print(path.read_text().strip())
        print(f"numbers: {path}")
    if ns.command in ("plot", "demo"):
        print(f"figure: {use.plot(cfg, run, **kw)}")
    return 0


def entry_point() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry_point()
