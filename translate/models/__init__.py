"""Image-to-image translation models. Importing this package imports every module in it, which
registers each model by name (see :mod:`shared.registry`)."""
import importlib
import pkgutil

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")
