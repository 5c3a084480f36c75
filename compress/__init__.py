"""ensō learned image compression: hyperprior codecs, the .enso file format, evaluation."""
import warnings

with warnings.catch_warnings():  # compressai scripts a helper with torch.jit at import time
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
    import compressai.entropy_models  # noqa: F401

from .api import ImageCodec, load  # noqa: E402  (the Python API: compress.load(NAME).encode(image))
