"""Test fixtures. Tests that need the team's data read it from $ENSO_DATA and skip when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # tests use tiny models; more threads only add overhead


def shared_data(name: str) -> Path:
    """``$ENSO_DATA/name``, or skip the test saying why."""
    root = os.environ.get("ENSO_DATA")
    if not root or not (Path(root) / name).is_dir():
        pytest.skip(f"needs the {name} data: set ENSO_DATA to the folder holding {name}/ (CI sets it to ../shared/data)")
    return Path(root) / name


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0
