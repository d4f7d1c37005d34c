"""One config convention and registry rule for operators, priors and conditional priors; files
written by the old code still load."""

from __future__ import annotations

import inspect
import json
import warnings

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import genprior
from genprior._config import ConfigMixin, Registry
from genprior._serialization import load_config
from genprior.operators import (
    OPERATORS,
    Downsample,
    GaussianCS,
    Inpaint,
    Operator,
    StructuredCS,
    load_operator,
    register_operator,
)
from genprior.priors import (
    CONDITIONAL_PRIORS,
    PRIORS,
    ConditionalPrior,
    Prior,
    available_priors,
    pretrained_dir,
    register_conditional_prior,
    register_prior,
)
from genprior.priors.conditional import ConditionalSR
from genprior.priors.conv_vae import ConvVAE
from genprior.priors.dcgan import DCGANDiscriminator, DCGANGenerator
from genprior.priors.linear import LinearGenerator
from genprior.priors.vae_mlp import MLPVAE


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------- registries
def test_registries_hold_exactly_the_shipped_classes():
    assert set(OPERATORS) == {"gaussian_cs", "structured_cs", "downsample", "inpaint",
                              "block_cs"}
    assert set(PRIORS) == {"MLPVAE", "DCGANGenerator", "ConvVAE", "LinearGenerator", "SpatialVAE",
                           "AutoencoderKLPrior", "SpatialGenerator"}
    assert set(CONDITIONAL_PRIORS) == {"ConditionalBlend", "ConditionalSR", "Denoiser"}
    assert OPERATORS["gaussian_cs"] is GaussianCS and PRIORS["ConvVAE"] is ConvVAE
    assert CONDITIONAL_PRIORS["ConditionalSR"] is ConditionalSR


def test_registry_key_rule_is_the_same_for_every_family():
    # the class's own ``name`` when it sets one, else its class name
    assert Registry.key(GaussianCS) == GaussianCS.name == "gaussian_cs"
    assert Registry.key(MLPVAE) == "MLPVAE"
    assert Registry.key(ConditionalSR) == "ConditionalSR"
    assert Registry.key(type("Sub", (GaussianCS,), {})) == "Sub"  # ``name`` is not inherited


@pytest.mark.parametrize("register, existing", [
    (register_operator, type("Clash", (Operator,), {"name": "gaussian_cs"})),
    (register_prior, type("MLPVAE", (Prior,), {})),
    (register_conditional_prior, type("ConditionalSR", (ConditionalPrior,), {})),
])
def test_duplicate_names_are_rejected(register, existing):
    registries = (OPERATORS, PRIORS, CONDITIONAL_PRIORS)
    before = [dict(reg) for reg in registries]
    with pytest.raises(ValueError, match="registered twice"):
        register(existing)
    assert [dict(reg) for reg in registries] == before


def test_registry_is_a_read_only_mapping():
    reg = Registry("widget")
    with pytest.raises(KeyError, match="unknown widget 'nope'"):
        reg["nope"]
    assert reg.get("nope") is None and "nope" not in reg and len(reg) == 0
    assert not hasattr(reg, "__setitem__")


# ----------------------------------------------------------------------------------- capture
CONFIGURED = {
    "gaussian_cs": lambda: GaussianCS(5, (1, 4, 3), normalize=False, seed=3, noise_std=0.1),
    "gaussian_cs_generator": lambda: GaussianCS(5, (1, 4, 3), generator=_gen(0)),
    "structured_cs": lambda: StructuredCS(7, [2, 3, 5], seed=1),
    "downsample": lambda: Downsample((3, 6, 4), 2, kernel="bicubic", noise_std=0.5),
    "inpaint": lambda: Inpaint.center_box((1, 5, 5), 3, noise_std=0.2),
    "mlp_vae": lambda: MLPVAE(img_shape=(1, 6, 5), hidden=7, latent_dim=3),
    "conv_vae": lambda: ConvVAE(img_shape=[3, 16, 16], latent_dim=6, base_channels=4),
    "dcgan": lambda: DCGANGenerator(nz=8, ngf=4, nc=1, img_size=28),
    "dcgan_discriminator": lambda: DCGANDiscriminator(ndf=4, nc=1, img_size=28),
    "linear": lambda: LinearGenerator(torch.ones(6, 2), None, (1, 2, 3)),
    "conditional_sr": lambda: ConditionalSR(img_size=(3, 8, 8), factor=2, width=4, n_blocks=1,
                                            noise_channels=1),
}

EXPECTED = {
    "gaussian_cs": {"m": 5, "img_size": [1, 4, 3], "normalize": False, "noise_std": 0.1,
                    "seed": 3},
    "gaussian_cs_generator": {"m": 5, "img_size": [1, 4, 3], "normalize": True,
                              "noise_std": 0.0, "seed": None},
    "structured_cs": {"m": 7, "img_size": [2, 3, 5], "noise_std": 0.0, "seed": 1},
    "downsample": {"img_size": [3, 6, 4], "factor": 2, "kernel": "bicubic", "noise_std": 0.5},
    "inpaint": {"img_size": [1, 5, 5], "noise_std": 0.2},
    "mlp_vae": {"img_shape": [1, 6, 5], "hidden": 7, "latent_dim": 3},
    "conv_vae": {"img_shape": [3, 16, 16], "latent_dim": 6, "base_channels": 4,
                 "latent_gaussian": False},
    "dcgan": {"nz": 8, "ngf": 4, "nc": 1, "img_size": 28},
    "dcgan_discriminator": {"ndf": 4, "nc": 1, "img_size": 28, "spectral_norm": False,
                            "batch_norm": True},
    "linear": {"img_shape": [1, 2, 3], "latent_dim": 2, "dtype": "float32"},
    "conditional_sr": {"img_size": [3, 8, 8], "factor": 2, "kernel": "box", "width": 4,
                       "n_blocks": 1, "noise_channels": 1},
}


@pytest.mark.parametrize("name", sorted(CONFIGURED))
def test_config_captures_constructor_arguments_and_round_trips(name):
    obj = CONFIGURED[name]()
    config = obj.config
    assert config == EXPECTED[name]
    assert json.loads(json.dumps(config)) == config  # JSON-able as it is
    rebuilt = type(obj).from_config(config)
    assert type(rebuilt) is type(obj) and rebuilt.config == config
    config["mutated"] = True  # a copy: the object's config is unchanged
    assert "mutated" not in obj.config


def test_config_of_a_new_class_needs_no_hand_written_dict():
    class Net(ConfigMixin, nn.Module):
        config_ignore = ("weight",)

        def __init__(self, width: int, sizes=(1, 2), *, weight: torch.Tensor | None = None,
                     scale: float | None = None) -> None:
            super().__init__()
            self.layer = nn.Linear(width, width)
            self.register_to_config(scale=1.0 if scale is None else float(scale))

    class Wider(Net):
        def __init__(self, width: int = 8, **kwargs) -> None:
            super().__init__(width, sizes=(3,), **kwargs)

    net = Net(4, weight=torch.ones(2))
    assert net.config == {"width": 4, "sizes": [1, 2], "scale": 1.0}
    # the outermost constructor is the one recorded, extra keywords included
    assert Wider(scale=2).config == {"width": 8, "scale": 2.0}
    with pytest.raises(RuntimeError, match="inside __init__"):
        net.register_to_config(width=5)
    with pytest.raises(TypeError, match="argument 'sizes'.*Tensor.*config_ignore"):
        Net(4, sizes=torch.zeros(2))


def test_operator_config_call_is_a_deprecated_alias_of_the_old_form():
    op = GaussianCS(5, (1, 4, 3), seed=3)
    with pytest.warns(DeprecationWarning, match="op.config"):
        legacy = op.config()
    assert legacy == {"type": "gaussian_cs", **op.config}
    assert repr(op) == ("GaussianCS(m=5, img_size=[1, 4, 3], normalize=True, noise_std=0.0, "
                        "seed=3)")


def test_hand_written_configs_still_work_with_a_warning():
    class OldOperator(Downsample):
        def __init__(self, img_size, factor, *, noise_std=0.0):
            Operator.__init__(self, img_size, noise_std=noise_std, config={"factor": factor})
            self.factor, self.kernel = factor, "box"

    class OldPrior(Prior):
        def __init__(self, width: int = 3, generator=None):
            super().__init__(width=int(width))
            self.latent_shape, self.img_shape = (width,), (1, 1, width)

    with pytest.warns(DeprecationWarning, match="config=...") as record:
        op = OldOperator((1, 4, 4), 2)
    assert record[0].filename == __file__  # the warning points at the subclass
    assert op.config == {"img_size": [1, 4, 4], "noise_std": 0.0, "factor": 2}
    with pytest.warns(DeprecationWarning, match="captured automatically"):
        prior = OldPrior(4, generator=torch.Generator())  # not JSON-able, but not recorded
    assert prior.config == {"width": 4}


# ----------------------------------------------------------------------------------- old files
def _old_operator_file(path, tensors, meta):
    """An operator file exactly as the old ``Operator.save`` wrote it."""
    save_file(tensors, str(path), metadata={"genprior_operator": json.dumps(meta)})


def test_operator_files_of_the_old_format_load(tmp_path):
    matrix = torch.randn(5, 12, generator=_gen(0))
    _old_operator_file(tmp_path / "g.safetensors", {"matrix": matrix},
                       {"type": "gaussian_cs", "img_size": [1, 4, 3], "noise_std": 0.1,
                        "m": 5, "normalize": True, "seed": None})
    mask = torch.rand(1, 4, 3, generator=_gen(1)) < 0.5
    _old_operator_file(tmp_path / "i.safetensors", {"mask": mask},
                       {"type": "inpaint", "img_size": [1, 4, 3], "noise_std": 0.0})
    _old_operator_file(tmp_path / "d.safetensors", {"_empty": torch.zeros(1)},
                       {"type": "downsample", "img_size": [3, 6, 4], "noise_std": 0.0,
                        "factor": 2, "kernel": "box"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = load_operator(tmp_path / "g.safetensors")
        i = load_operator(tmp_path / "i.safetensors")
        d = load_operator(tmp_path / "d.safetensors")
    assert isinstance(g, GaussianCS) and torch.equal(g.matrix, matrix)
    assert g.config == {"m": 5, "img_size": [1, 4, 3], "normalize": True, "noise_std": 0.1,
                        "seed": None}
    assert isinstance(i, Inpaint) and torch.equal(i.mask, mask) and i.m == int(mask.sum())
    assert isinstance(d, Downsample) and d.factor == 2 and d.kernel == "box"
    # saved again, the same metadata as the old code wrote
    g.save(tmp_path / "g2.safetensors")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "g2.safetensors"), framework="pt") as f:
        meta = json.loads(f.metadata()["genprior_operator"])
    assert meta == {"type": "gaussian_cs", "img_size": [1, 4, 3], "noise_std": 0.1, "m": 5,
                    "normalize": True, "seed": None}


SHIPPED_CLASSES = {"mnist-vae": MLPVAE, "celeba-dcgan": DCGANGenerator, "celeba-vae": ConvVAE,
                   "celeba-sr4-affgan": ConditionalSR, "celeba-sr4-mse": ConditionalSR}


@pytest.mark.parametrize("name", sorted(SHIPPED_CLASSES))
def test_shipped_prior_folders_of_the_old_code_load(name, tmp_path):
    assert name in available_priors()
    stored = load_config(pretrained_dir() / name / "config.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = genprior.load_prior(name)
    assert type(model) is SHIPPED_CLASSES[name]
    assert isinstance(model, ConditionalPrior) is (SHIPPED_CLASSES[name] is ConditionalSR)
    assert isinstance(model, Prior) is not isinstance(model, ConditionalPrior)
    # the stored arguments, plus those added to the class since, at their defaults
    defaults = {k: p.default for k, p in inspect.signature(type(model)).parameters.items()}
    assert model.config == {**{k: defaults[k] for k in model.config}, **stored["config"]}
    model.save_pretrained(tmp_path)  # written again in the same format
    again = load_config(tmp_path / "config.json")
    assert again == {"_class": stored["_class"], "config": model.config}
