"""Build operators from the short spec strings used by the CLI (``"gaussian_cs:200"`` ...)."""

from __future__ import annotations

from genprior._random import make_generator
from genprior.operators.base import Operator
from genprior.operators.block_cs import KINDS, MATRIX_SUFFIXES, BlockCS
from genprior.operators.downsample import KERNELS, Downsample
from genprior.operators.gaussian_cs import GaussianCS
from genprior.operators.inpaint import Inpaint
from genprior.operators.structured_cs import StructuredCS

__all__ = ["SPEC_FORMS", "make_operator"]

SPEC_FORMS = (
    "gaussian_cs:M",
    "gaussian_cs_unscaled:M",
    "structured_cs:M",
    "downsample:F",
    "downsample:F:box",
    "downsample:F:bicubic",
    "inpaint:center:S",
    "inpaint:random:P",
    "block_cs:B:M",
    "block_cs:B:M:gaussian",
    "block_cs:B:M:orthonormal",
    "block_cs:B:FILE",
)


def _bad_spec(spec: str, why: str) -> ValueError:
    return ValueError(
        f"invalid operator spec {spec!r} ({why}); valid forms: {', '.join(SPEC_FORMS)} "
        "(M measurements, F integer factor, S box side in pixels, P kept fraction in (0, 1], "
        "B block side in pixels, FILE a .mat, .npy or .safetensors matrix with B*B columns)"
    )


def _to_int(text: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _bad_spec(spec, f"{text!r} is not an integer") from None


def make_operator(
    spec: str,
    img_size: tuple[int, int, int],
    *,
    noise_std: float = 0.0,
    seed: int = 0,
) -> Operator:
    """Build an operator from a spec string.

    Forms (see :data:`SPEC_FORMS`): ``gaussian_cs:M`` (:class:`GaussianCS`, entries of variance
    ``1/M``), ``gaussian_cs_unscaled:M`` (variance 1, the CSGM reference convention),
    ``structured_cs:M``, ``downsample:F[:box|:bicubic]`` (box by default),
    ``inpaint:center:S`` (hide a centred ``S x S`` box), ``inpaint:random:P`` (observe a
    random fraction ``P`` of the pixels), ``block_cs:B:M[:gaussian|:orthonormal]``
    (:class:`BlockCS`, ``M`` measurements of every ``B x B`` block, a drawn matrix, Gaussian by
    default) and ``block_cs:B:FILE`` (its matrix read from ``FILE``, e.g. a Set11
    ``phi_0_10_1089.mat`` with ``B = 33``; everything after ``B:`` is the path).

    Args:
        spec: the spec string.
        img_size: image shape ``(C, H, W)``.
        noise_std: standard deviation of the measurement noise.
        seed: seed of every random draw of the operator (matrix, signs, rows, mask).

    Returns:
        the operator.

    Raises:
        ValueError: for a malformed spec, listing the valid forms, or invalid values.

    Example:
        >>> op = make_operator("downsample:4:bicubic", (3, 64, 64))
        >>> op.meas_shape
        (3, 16, 16)
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str, got {type(spec).__name__}")
    kind, *args = spec.strip().split(":")
    if kind in ("gaussian_cs", "gaussian_cs_unscaled", "structured_cs"):
        if len(args) != 1:
            raise _bad_spec(spec, f"{kind} takes exactly one argument M")
        m = _to_int(args[0], spec)
        if kind == "structured_cs":
            return StructuredCS(m, img_size, noise_std=noise_std, seed=seed)
        normalize = kind == "gaussian_cs"
        return GaussianCS(m, img_size, normalize=normalize, noise_std=noise_std, seed=seed)
    if kind == "downsample":
        if len(args) not in (1, 2) or (len(args) == 2 and args[1] not in KERNELS):
            raise _bad_spec(spec, "downsample takes F and optionally box or bicubic")
        kernel = args[1] if len(args) == 2 else "box"
        return Downsample(img_size, _to_int(args[0], spec), kernel=kernel, noise_std=noise_std)
    if kind == "inpaint":
        if len(args) != 2 or args[0] not in ("center", "random"):
            raise _bad_spec(spec, "inpaint takes center:S or random:P")
        if args[0] == "center":
            return Inpaint.center_box(img_size, _to_int(args[1], spec), noise_std=noise_std)
        try:
            keep_fraction = float(args[1])
        except ValueError:
            raise _bad_spec(spec, f"{args[1]!r} is not a number") from None
        return Inpaint.random(
            img_size, keep_fraction, generator=make_generator(seed), noise_std=noise_std
        )
    if kind == "block_cs":
        return _block_cs(spec, img_size, noise_std=noise_std, seed=seed)
    raise _bad_spec(spec, f"unknown operator {kind!r}")


def _block_cs(spec: str, img_size: tuple[int, int, int], *, noise_std: float, seed: int) -> BlockCS:
    """``block_cs:B:M[:KIND]`` or ``block_cs:B:FILE`` (the path may contain ``:``)."""
    parts = spec.strip().split(":", 2)
    if len(parts) != 3:
        raise _bad_spec(spec, "block_cs takes B:M, B:M:KIND or B:FILE")
    block = _to_int(parts[1], spec)
    first, *more = parts[2].split(":")
    try:
        m = int(first)
    except ValueError:
        path = parts[2]
        if not path.lower().endswith(MATRIX_SUFFIXES):
            raise _bad_spec(spec, f"{path!r} is neither an integer M nor a matrix file") from None
        return BlockCS(img_size, block, path, noise_std=noise_std)
    if len(more) > 1 or (more and more[0] not in KINDS):
        raise _bad_spec(spec, f"block_cs:B:M takes optionally one of {', '.join(KINDS)}")
    kind = more[0] if more else "gaussian"
    return BlockCS(img_size, block, m=m, kind=kind, noise_std=noise_std, seed=seed)
