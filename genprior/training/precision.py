"""Mixed precision for the training loops: ``torch.autocast`` and fp16 gradient scaling."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

__all__ = ["Precision"]


class Precision:
    """``torch.autocast`` + one ``GradScaler`` per optimiser (fp16) on CUDA; a no-op for fp32.

    Args:
        kind: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: the training device (mixed precision requires CUDA).

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> precision = Precision("fp32", torch.device("cpu"))
        >>> with precision.autocast():
        ...     loss = model(torch.ones(1, 2)).sum()
        >>> precision.step(loss, opt)
    """

    def __init__(self, kind: str, device: torch.device) -> None:
        if kind not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {kind!r}")
        if kind != "fp32" and device.type != "cuda":
            raise ValueError(f"precision {kind} needs CUDA, got device {device}")
        self.kind, self.device = kind, device
        self._scalers: dict[tuple[int, ...], torch.amp.GradScaler] = {}

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context for the forward pass."""
        if self.kind == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.kind == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)

    def step(self, loss: Tensor, *optimizers: torch.optim.Optimizer) -> None:
        """``zero_grad``, one backward (scaled for fp16) and a step of each optimiser."""
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        if self.kind != "fp16":
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
            return
        key = tuple(id(optimizer) for optimizer in optimizers)
        scaler = self._scalers.setdefault(key, torch.amp.GradScaler("cuda"))
        scaler.scale(loss).backward()
        for optimizer in optimizers:
            scaler.step(optimizer)
        scaler.update()
