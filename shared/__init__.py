"""ensō's shared core: the training loop, configs, registry, data, metrics and the autoencoder family."""
__version__ = "0.1.0"
