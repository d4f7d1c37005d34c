"""Shared fixtures: devices, dtypes, seeded generators."""

import pytest
import torch

torch.set_num_threads(1)  # tiny test tensors: threads only add overhead on a loaded 2-core machine

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
