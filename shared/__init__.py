"""ensō's shared core: the training loop, configs, registry, data, metrics and the autoencoder family."""
__version__ = "0.1.0"

#: the Python API, imported on first use (every ``shared.*`` import runs this file):
#: ``shared.build(NAME, config)``, ``shared.Trainer(model, dataset, shared.TrainConfig(...))``,
#: ``shared.load(FOLDER)`` (a run folder's ``export/`` or an export folder)
_API = {"build": ("registry", "build"), "Trainer": ("trainer", "Trainer"), "TrainConfig": ("trainer", "TrainConfig"),
        "load": ("checkpoint", "load_exported")}
__all__ = list(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
