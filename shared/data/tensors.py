"""In-memory data sets."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from .sampling import split_key


class TensorItems(Dataset):
    """Rows of equally long tensors; ``ds[i]`` or ``ds[(i, seed)]`` → one row, or a tuple of rows."""

    def __init__(self, *tensors: torch.Tensor):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorItems needs tensors of one common length")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, key):
        i, _ = split_key(key)
        rows = tuple(t[i] for t in self.tensors)
        return rows[0] if len(rows) == 1 else rows
