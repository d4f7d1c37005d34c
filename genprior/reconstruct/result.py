"""The results every reconstruction method returns (dataclasses, never tuples)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["CSGMResult", "ReconstructionResult", "SparseGenResult"]


@dataclass
class ReconstructionResult:
    r"""Reconstructions of a batch of ``B`` measurement vectors.

    Attributes:
        x_hat: the reconstructed images.
        z_hat: the solver's variable at the solution: the latent of the chosen restart for CSGM
            and Sparse-Gen, the basis coefficients for Lasso, ``x_hat`` itself for the pseudo-
            inverse and bicubic baselines.
        measurement_error: :math:`\|A\hat x - y\|^2 / m` per image (the mean squared residual
            over the ``m`` measurements, as ``get_measurement_loss`` of the CSGM reference code),
            computed on the returned ``x_hat``.
        loss: the method's objective at the solution, per image, in the units its docstring
            states (equal to ``measurement_error`` for the non-iterative baselines).
        history: the objective at every iteration (empty, ``(0, B)``, for non-iterative methods).

    Shape:
        - x_hat: ``(B, C, H, W)``
        - z_hat: ``(B, *latent_shape)``
        - measurement_error, loss: ``(B,)``
        - history: ``(T, B, ...)`` (``(T, B, R)`` with restarts)
    """

    x_hat: Tensor
    z_hat: Tensor
    measurement_error: Tensor
    loss: Tensor
    history: Tensor


@dataclass
class CSGMResult(ReconstructionResult):
    r"""CSGM output: the chosen restart per image, plus every restart's final numbers.

    Attributes:
        best_restart: index of the kept restart per image.
        restart_measurement_error: :math:`\|A G(z_r) - y\|^2 / m` of every restart.
        restart_loss: the objective of every restart.
        n_steps: optimiser steps each restart took (``< steps`` when it stopped early or was
            halved away).
        evaluations: generator evaluations each restart used (one per gradient step; see
            :class:`~genprior.optim.StepOutcome` for L-BFGS and Gauss-Newton).

    Shape:
        - best_restart: ``(B,)``
        - restart_measurement_error, restart_loss, n_steps, evaluations: ``(B, R)``
        - history: ``(T, B, R)``; a restart that stopped early repeats its last value.
    """

    best_restart: Tensor
    restart_measurement_error: Tensor
    restart_loss: Tensor
    n_steps: Tensor
    evaluations: Tensor


@dataclass
class SparseGenResult(CSGMResult):
    r"""Sparse-Gen output: :math:`\hat x = G(\hat z) + \hat\nu`.

    Attributes:
        nu_hat: the sparse deviation :math:`\hat\nu` (image domain) of the chosen restart.
        x_gen: the generator's part :math:`G(\hat z)`.

    Shape:
        - nu_hat, x_gen: ``(B, C, H, W)``
    """

    nu_hat: Tensor
    x_gen: Tensor
