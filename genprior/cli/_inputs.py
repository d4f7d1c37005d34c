"""Reading and checking the inputs of the ``genprior`` commands, before any work starts.

Every reader here turns an unusable input (a missing, truncated or corrupt file, a file of
another kind, a device that is not there) into a ``ValueError`` or ``OSError`` whose one-line
message names the flag and the file, which ``genprior.cli.main`` prints with exit status 2.

Measurements carry their operator: ``genprior measure`` stores an *operator record* in
``y.npz`` (:func:`operator_record`: spec, seed, noise level, type, config and the SHA-256 of
the operator's tensors) and the commands that read ``y`` check the operator they are given
against it (:func:`resolve_operator`, :func:`check_operator`).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from genprior._io import Measurements, load_measurements
from genprior._serialization import tensors_sha256

__all__ = [
    "LATENT_METHODS",
    "check_operator",
    "check_prior_kind",
    "check_threads",
    "fit_prior_arg",
    "load_operator_file",
    "load_prior_arg",
    "operator_record",
    "parse_device",
    "read_measurements",
    "reading",
    "resolve_operator",
]

#: the exceptions a reader may raise on a file that is not what it should be
_READ_ERRORS = (ValueError, TypeError, KeyError, AttributeError, RuntimeError, OSError, EOFError,
                zipfile.BadZipFile, zlib.error, SafetensorError, json.JSONDecodeError)

#: methods of ``genprior reconstruct`` / ``genprior sample`` that need a latent prior x = G(z)
LATENT_METHODS = {"reconstruct": ("csgm", "sparse-gen", "adaptive"),
                  "sample": ("mala", "ula", "restarts")}
#: methods that need a conditional generator x = f(y, eps)
_CONDITIONAL_METHODS = {"reconstruct": ("conditional",), "sample": ("eps",)}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


@contextmanager
def reading(option: str, value: Any) -> Iterator[None]:
    """Turn any error of reading ``value`` (given as ``option``) into a ``ValueError`` that
    names both; a missing file stays a ``FileNotFoundError``.

    Example:
        >>> with reading("--prior", "p/"):  # doctest: +IGNORE_EXCEPTION_DETAIL
        ...     raise KeyError("w")
        Traceback (most recent call last):
        ValueError: --prior p/: cannot be read: KeyError: 'w'
    """
    try:
        yield
    except FileNotFoundError as e:
        raise FileNotFoundError(_named(option, value, _os_message(e))) from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{option} {value}: cannot be read: not valid JSON: {e}") from e
    except (ValueError, TypeError) as e:  # the reader's own message names the problem
        raise ValueError(_named(option, value, str(e))) from e
    except _READ_ERRORS as e:
        raise ValueError(f"{option} {value}: cannot be read: {type(e).__name__}: "
                         f"{_one_line(_os_message(e))}") from e


def _named(option: str, value: Any, text: str) -> str:
    """``text`` on one line, prefixed by the option (and the value, unless ``text`` starts
    with it)."""
    text = _one_line(text)
    if text.startswith(str(value)):
        return f"{option} {text}"
    return f"{option} {value}: {text}"


def _os_message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror and e.filename:
        return f"{e.strerror}: {e.filename}"
    return str(e)


def parse_device(value: str, option: str = "--device") -> torch.device:
    """The torch device named by ``value``, refused when it is malformed or not present.

    Raises:
        ValueError: naming the option: not a device, or no such GPU here.
    """
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{option} {value!r} is not a torch device (e.g. cpu, cuda, cuda:1): "
                         f"{_one_line(str(e))}") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{option} {value}: no CUDA GPU is available here "
                             "(torch.cuda.is_available() is False); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{option} {value}: only {torch.cuda.device_count()} CUDA GPU(s) "
                             "are available")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{option} {value}: MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{option} {value}: device type {device.type!r} is not supported; use "
                         "cpu or cuda")
    return device


def check_threads(value: int | None, option: str = "--threads") -> None:
    """Set torch's CPU threads to ``value`` (``None``: leave torch's choice).

    Raises:
        ValueError: ``value < 1``.
    """
    if value is None:
        return
    if value < 1:
        raise ValueError(f"{option} must be >= 1, got {value}")
    torch.set_num_threads(value)


def read_measurements(path: str, option: str = "--measurements") -> Measurements:
    """Load a measurements file, refusing one whose ``y`` is complex.

    Raises:
        FileNotFoundError / ValueError: naming the option and the file.
    """
    with reading(option, path):
        meas = load_measurements(path)
    if meas.y.is_complex():
        raise ValueError(f"{option} {path}: y is complex ({meas.y.dtype}) but genprior's "
                         "operators are real; store y.real (or stack real and imaginary parts "
                         "as separate measurements)")
    return meas


def load_prior_arg(value: str, device: torch.device, option: str = "--prior"):
    """Load a prior or conditional generator (``genprior.load_prior``), naming ``option`` in
    every error."""
    from genprior.priors import load_prior

    with reading(option, value):
        return load_prior(value, device=device)


def check_prior_kind(prior, method: str, command: str, value: str) -> None:
    """Refuse a latent prior given to a conditional method or the reverse, saying which
    methods the model supports.

    Raises:
        ValueError: naming ``--prior`` and the methods to use instead.
    """
    from genprior.priors.conditional import is_conditional

    if prior is None:
        return
    conditional = is_conditional(prior)
    latent_methods = LATENT_METHODS[command]
    conditional_methods = _CONDITIONAL_METHODS[command]
    if conditional and method in latent_methods:
        raise ValueError(
            f"--prior {value} is a conditional generator x = f(y, eps) ({type(prior).__name__}), "
            f"which --method {method} cannot use (it needs a latent prior x = G(z)); with this "
            f"model use --method {' or '.join(conditional_methods)}")
    if not conditional and method in conditional_methods:
        raise ValueError(
            f"--prior {value} is a latent prior x = G(z) ({type(prior).__name__}), which "
            f"--method {method} cannot use (it needs a conditional generator x = f(y, eps)); "
            f"with this prior use --method {', '.join(latent_methods)}")


def fit_prior_arg(prior, A, value: str, option: str = "--prior"):
    """``prior`` fitted to the operator's image size (``genprior.reconstruct.fit_prior``: a
    resizable prior such as a SpatialVAE gets a view for ``A.img_size``), naming ``option``
    in the error of a fixed-size prior of another size.

    Raises:
        ValueError: naming the option, both shapes and that the prior has a fixed size.
    """
    from genprior.reconstruct import fit_prior

    try:
        return fit_prior(prior, tuple(A.img_size))
    except ValueError as e:
        raise ValueError(f"{option} {value}: {e}") from e


# ---------------------------------------------------------------------- operators


def _tensors(A) -> dict[str, torch.Tensor]:
    return {k: v for k, v in A.state_dict().items() if not k.startswith("noise_model")}


def operator_record(A, spec: str | None = None) -> dict[str, Any]:
    """What ``y.npz`` records about the operator ``A`` that measured it.

    Args:
        A: a genprior operator.
        spec: the spec string it was built from, if any.

    Returns:
        ``{"spec", "seed", "noise_std", "type", "config", "sha256"}``: ``config`` is the
        operator's JSON config, ``sha256`` the :func:`~genprior._serialization.tensors_sha256`
        of its tensors (the matrix, mask, signs...).

    Example:
        >>> from genprior.operators import make_operator
        >>> rec = operator_record(make_operator("gaussian_cs:10", (1, 8, 8), seed=3),
        ...                       "gaussian_cs:10")
        >>> rec["seed"], rec["type"], len(rec["sha256"])
        (3, 'gaussian_cs', 64)
    """
    from genprior.operators import OPERATORS

    config = json.loads(json.dumps(dict(A.config)))
    return {"spec": spec, "seed": config.get("seed"), "noise_std": float(A.noise_std),
            "type": OPERATORS.key(type(A)), "config": config, "sha256": tensors_sha256(_tensors(A))}


def _legacy_record(meas: Measurements) -> dict[str, Any] | None:
    """A record from the metadata of a ``y.npz`` written before operator records (spec, seed
    and noise level only), or ``None``."""
    meta = meas.meta
    if isinstance(meta.get("operator"), str) and ":" in meta["operator"]:
        return {"spec": meta["operator"], "seed": int(meta.get("seed", 0)),
                "noise_std": float(meta.get("noise_std", 0.0))}
    return None


def _describe(record: dict[str, Any]) -> str:
    what = record.get("spec") or record.get("type", "?")
    return f"{what} (seed {record.get('seed')}, noise_std {record.get('noise_std')})"


def check_operator(A, meas: Measurements, given: str, meas_path: str,
                   option: str = "--operator") -> None:
    """Refuse an operator that is not the one that measured ``meas``.

    Compares type, config and tensors with ``meas.operator_record``; a file without a record
    but with ``measure``'s older metadata (spec, seed, noise level) is compared with the
    operator rebuilt from it; a file that says nothing is not checked.

    Raises:
        ValueError: naming both files, what differs and what to pass instead.
    """
    from genprior.operators import make_operator

    record = meas.operator_record
    if record is None:
        legacy = _legacy_record(meas)
        if legacy is None:
            return
        try:
            expected = make_operator(legacy["spec"], tuple(A.img_size),
                                     noise_std=legacy["noise_std"], seed=legacy["seed"])
        except (ValueError, TypeError):
            return
        record = {**operator_record(expected, legacy["spec"]), "seed": legacy["seed"]}
    mine = operator_record(A)
    diffs = []
    if mine["type"] != record.get("type"):
        diffs.append(f"type {mine['type']} != {record.get('type')}")
    else:
        theirs = record.get("config", {})
        for key in sorted(set(mine["config"]) | set(theirs)):
            if mine["config"].get(key) != theirs.get(key):
                diffs.append(f"{key} {mine['config'].get(key)} != {theirs.get(key)}")
        if mine["sha256"] != record.get("sha256"):
            diffs.append("the matrix/mask differs")
    if not diffs:
        return
    use = (f"{option} {record['spec']} (its seed and noise level are read from {meas_path})"
           if record.get("spec") else "the operator file written with it")
    beside = Path(meas_path).with_name("operator.safetensors")
    if beside.is_file():
        use += f", or {option} {beside}"
    raise ValueError(f"{option} {given} is not the operator that measured {meas_path}, which "
                     f"was {_describe(record)}: {'; '.join(diffs)} (given != recorded); use "
                     f"{use}")


def load_operator_file(path: str, device: torch.device, option: str = "--operator"):
    """Load an operator file written by ``genprior measure``, naming ``option`` in errors."""
    from genprior.operators import load_operator

    with reading(option, path):
        return load_operator(path, device=device)


def resolve_operator(value: str, meas: Measurements, meas_path: str, *, prior=None,
                     device: torch.device, option: str = "--operator"):
    """The operator named by ``--operator``: a file, or a spec built for the image size of a
    fixed-size prior (for a resizable prior, one with ``resized``, or without a prior: of the
    recorded operator or the measurements' ``x``, else the prior's) with the seed and noise
    level recorded in the measurements; checked against the record (:func:`check_operator`).

    Raises:
        FileNotFoundError: neither a file nor a spec.
        ValueError: unreadable file, bad spec, no image size, or not the recorded operator.
    """
    from genprior.operators import make_operator

    if Path(value).is_file():
        A = load_operator_file(value, device, option)
    elif ":" in value and not Path(value).exists():
        record = meas.operator_record or _legacy_record(meas) or {}
        img_size = None
        if prior is not None and not hasattr(prior, "resized"):
            img_size = tuple(prior.img_shape)
        elif "img_size" in record.get("config", {}):
            img_size = tuple(record["config"]["img_size"])
        elif meas.x is not None:
            img_size = tuple(meas.x.shape[1:])
        elif prior is not None:
            img_size = tuple(prior.img_shape)
        if img_size is None:
            raise ValueError(f"{option} {value}: a spec needs the image size, from --prior or "
                             f"from measurements written by genprior measure; pass the operator "
                             f"file instead")
        seed = record.get("seed")
        with reading(option, value):
            A = make_operator(value, img_size, noise_std=float(record.get("noise_std", 0.0)),
                              seed=0 if seed is None else int(seed))
        A = A.to(device)
    else:
        raise FileNotFoundError(f"{option} {value!r} is neither an operator file nor a spec "
                                "such as gaussian_cs:100 or downsample:4")
    check_operator(A, meas, value, meas_path, option)
    return A
