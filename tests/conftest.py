"""Shared fixtures: devices, dtypes, seeded generators."""

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
