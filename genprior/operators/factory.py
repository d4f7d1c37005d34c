"""Build operators from the short spec strings used by the CLI (``"gaussian_cs:200"`` ...)."""

from __future__ import annotations

from genprior._random import make_generator
from genprior.operators.base import Operator
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
)


def _bad_spec(spec: str, why: str) -> ValueError:
    return ValueError(
        f"invalid operator spec {spec!r} ({why}); valid forms: {', '.join(SPEC_FORMS)} "
        "(M measurements, F integer factor, S box side in pixels, P kept fraction in (0, 1])"
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
    ``inpaint:center:S`` (hide a centred ``S x S`` box) and ``inpaint:random:P`` (observe a
    random fraction ``P`` of the pixels).

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
    raise _bad_spec(spec, f"unknown operator {kind!r}")
