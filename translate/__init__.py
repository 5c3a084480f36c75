"""ensō unpaired image translation: CycleGAN-family translators, training, evaluation."""
from .api import ImageTranslator, load  # noqa: F401  (the Python API: translate.load().apply(image))
