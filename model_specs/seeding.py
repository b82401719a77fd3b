"""Seeded weights that behave like a trained network's, shared by every spec here.

PyTorch's default conv init shrinks activations ~2.4x per layer, so after 20 layers a head would
output little more than its biases and any parity test would pass trivially. Kaiming-normal init
(fan-in, ReLU gain) keeps the variance; BatchNorm statistics are drawn near identity so that they
matter (a fused or dropped BN shows) without dominating.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def seed_batchnorm(module: nn.modules.batchnorm._BatchNorm, generator: torch.Generator) -> None:
    """Affine parameters and running statistics near identity but not equal to it, so that no normalisation is a
    no-op (a fused or dropped BatchNorm shows), drawn from ``generator`` in a fixed order."""
    n = module.num_features
    module.weight.copy_(1.0 + 0.1 * torch.randn(n, generator=generator))
    module.bias.copy_(0.05 * torch.randn(n, generator=generator))
    module.running_mean.copy_(0.05 * torch.randn(n, generator=generator))
    module.running_var.copy_(1.0 + 0.2 * torch.rand(n, generator=generator))


def randomise_batchnorms(model: nn.Module, seed: int) -> None:
    """Every BatchNorm of ``model`` seeded (:func:`seed_batchnorm`), the rest left as it is: an upstream model
    straight from its ``init_weights`` has mean 0, var 1 everywhere."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                seed_batchnorm(module, generator)


def randomise_layer_norms(model: torch.nn.Module, seed: int) -> None:
    """LayerNorm affines and layer scales (parameters named ``gamma``) near identity but not equal to it, so that
    a swapped or dropped one shows (upstream init leaves them at 1 and 0, or at the config's scale). A model
    without either is left as it is."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            if isinstance(owner, nn.LayerNorm) or name.rsplit(".", 1)[-1] == "gamma":
                noise = torch.randn(parameter.shape, generator=generator)
                parameter.copy_(0.05 * noise if name.endswith(".bias") else 1.0 + 0.1 * noise)


def init_like_trained(model: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                weight = module.weight
                # ConvTranspose2d stores (in, out, k, k): its fan-in is in x k x k
                fan_in = weight.shape[0] * weight[0, 0].numel() if isinstance(module, nn.ConvTranspose2d) else weight[0].numel()
                weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-0.1, 0.1, generator=generator)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                seed_batchnorm(module, generator)
    return model.eval()
