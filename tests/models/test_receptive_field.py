"""Receptive-field arithmetic, checked against the gradient support of a real random-weight U-Net."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import vidfilter.models.receptive_field as rf_module
from vidfilter.models.receptive_field import (
    Layer,
    receptive_field_size,
    unet_extent,
    unet_layers,
    unet_receptive_field,
)
from vidfilter.models.unet import UNet


def test_module_is_pure_arithmetic() -> None:
    """receptive_field.py imports neither torch nor numpy (usable from tiling code without them)."""
    tree = ast.parse(Path(rf_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"torch", "numpy", "vidfilter"}


def test_recurrence_on_simple_stacks() -> None:
    """Two 3x3 convs see 5 px; conv-pool-conv sees 3 + 1 + 2*2 = 8 px."""
    assert receptive_field_size([Layer("conv"), Layer("conv")]) == 5
    assert receptive_field_size([Layer("conv"), Layer("pool", 2, 2), Layer("conv")]) == 8
    assert receptive_field_size([Layer("pool", 2, 2), Layer("up", 1, 2), Layer("conv")]) == 4


def test_paper_and_fast_presets() -> None:
    """Depth 5 (both presets): 286 px receptive field, 158 px exact reach, 160 px tile margin."""
    rf = unet_receptive_field(5)
    assert rf.size == 286
    assert rf.extent == (158, 158)
    assert rf.radius == 158
    assert rf.multiple == 32
    assert rf.margin == 160
    assert rf.margin % rf.multiple == 0 and rf.margin >= rf.radius


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6])
def test_margin_properties(depth: int) -> None:
    """The margin covers the textbook half-width and the exact reach, on the 2**depth grid."""
    rf = unet_receptive_field(depth)
    assert rf.size == receptive_field_size(unet_layers(depth))
    assert rf.radius >= (rf.size - 1) / 2
    assert rf.radius >= max(unet_extent(depth))
    assert rf.margin % 2**depth == 0
    assert rf.margin - rf.radius < 2**depth


@pytest.mark.parametrize("depth", [2, 3])
def test_empirical_radius_matches(depth: int) -> None:
    """Gradient support of single output pixels (all alignments) reaches exactly the computed radius.

    Union over a few random inputs (max-pool routes gradients to one pixel per window), output
    pixels on the diagonal at every position modulo 2**depth, input far from the borders.
    """
    torch.manual_seed(0)
    model = UNet(1, 1, width=4, depth=depth)
    rf = unet_receptive_field(depth)
    n = 4 * rf.margin  # multiple of 2**depth: no padding, borders far away
    centre = n // 2
    reach = 0
    for _ in range(3):
        x = torch.randn(1, 1, n, n, requires_grad=True)
        y = model(x)
        for p in range(centre, centre + 2**depth):
            (g,) = torch.autograd.grad(y[0, 0, p, p], x, retain_graph=True)
            support = (g[0, 0] != 0).nonzero()
            reach = max(reach, int((support - p).abs().max()))
    assert reach <= rf.radius
    assert reach >= rf.radius - 2  # close to it (here: equal)


def test_model_exposes_margin() -> None:
    """UNet.margin / .multiple come from this module."""
    model = UNet(1, 1, width=4, depth=3)
    assert model.margin == unet_receptive_field(3).margin == 40
    assert model.multiple == 8
