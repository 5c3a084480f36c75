"""The autoencoder family. Importing this package registers every model by name."""
from . import ae, vae  # noqa: F401
