"""Data sets: bundled digits, generated sprites and series, image folders; all keyed by (index, item_seed)."""
from .sampling import StepBatchSampler, item_generator, split_key
from .tensors import TensorItems

__all__ = ["StepBatchSampler", "TensorItems", "item_generator", "split_key"]
