"""What the autoencoders are for: one module per use, each trainable, measurable and plottable.

A use is a :class:`Use` working in one folder, its run: ``train`` fits its model(s) through the shared
:class:`~shared.trainer.Trainer` into ``RUN/runs/``, ``evaluate`` writes ``RUN/numbers.json``, ``plot``
writes ``RUN/<use>.png``. The ``ae`` command exposes them as ``ae train|eval|plot USE --run RUN`` and
``ae demo USE -o RUN``.
Importing this package imports every module in it, which registers each use.
"""
import importlib
import pkgutil

from .base import USES, Use, get_use, register_use, train_model  # noqa: F401

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")
