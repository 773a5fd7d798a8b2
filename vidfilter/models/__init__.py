"""vidfilter.models: the U-Net presets, receptive-field arithmetic and model bundles.

- :func:`build_model` / :class:`UNet` (``unet.py``): the Noise2Noise U-Net of the paper;
  ``UNet.margin`` and ``UNet.multiple`` tell tiled inference how much context to add and where
  to place tile origins.
- :func:`unet_receptive_field` (``receptive_field.py``): pure arithmetic, no torch.
- :func:`save_bundle` / :func:`load_model` (``bundle.py``): one-file model bundles.
"""

from __future__ import annotations

from vidfilter.models.bundle import Bundle, BundleNotFoundError, load_model, save_bundle
from vidfilter.models.receptive_field import ReceptiveField, unet_receptive_field
from vidfilter.models.unet import UNet, build_model

__all__ = ["Bundle", "BundleNotFoundError", "ReceptiveField", "UNet", "build_model", "load_model",
    "save_bundle", "unet_receptive_field"]
