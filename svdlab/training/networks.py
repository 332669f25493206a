"""The networks a run trains: built from an architecture (fresh weights) or a checkpoint, and the
parameters each stage kind trains."""

from __future__ import annotations

import re

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from svdlab.errors import InvalidParameterError
from svdlab.models import PRESETS, SVDModel, load_model
from svdlab.training.config import ModelSection

TEMPORAL_PARAMETER = re.compile(r"temporal|time_mixer|time_pos_embed")


def build_model(section: ModelSection, resolve, seed: int, context: bool = False) -> SVDModel:
    """The model to train on the CPU in float32: a checkpoint as loaded (with a fresh seeded UNet if it has
    UNet overrides), or an architecture whose UNet and VAE (and image encoder, if it has overrides) start
    from fresh seeded weights; for the context task, with the UNet's input widened to take context."""
    model = _build(section, resolve, seed)
    if context:
        widen_for_context(model.unet, model.vae.config.latent_channels)
    return model


def widen_for_context(unet: torch.nn.Module, latent_channels: int) -> None:
    """Give an image-to-video UNet (noisy and conditioning latents in) a mask channel, starting at zero;
    its conditioning-latent channels become the context-latent channels, so that given frame 0 alone its
    UNet computes what it computed before. A context UNet is left as is."""
    conv = unet.conv_in
    if conv.in_channels == 2 * latent_channels + 1:
        return
    if conv.in_channels != 2 * latent_channels:
        raise InvalidParameterError(
            f"the context task needs a UNet that takes {2 * latent_channels} (image-to-video) or "
            f"{2 * latent_channels + 1} (context) input channels; this one takes {conv.in_channels}: set "
            f"[model.unet] in_channels = {2 * latent_channels + 1}"
        )
    wider = torch.nn.Conv2d(
        conv.in_channels + 1, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding
    )
    with torch.no_grad():
        wider.weight.zero_()
        wider.weight[:, : conv.in_channels] = conv.weight
        wider.bias.copy_(conv.bias)
    unet.conv_in = wider.to(conv.weight.device, conv.weight.dtype)
    unet.register_to_config(in_channels=conv.in_channels + 1)


def _build(section: ModelSection, resolve, seed: int) -> SVDModel:
    """The model as the [model] section names it."""
    source = section.checkpoint or section.architecture
    local = resolve(source)
    name = str(local) if source not in PRESETS and local.exists() else source
    model = load_model(name, device="cpu", dtype="float32")
    if section.checkpoint is not None and not section.unet:
        return model
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model.unet = _fresh(model.unet, section.unet)
        if section.checkpoint is not None:
            return model
        model.vae = _fresh(model.vae, section.vae)
        if section.image_encoder:
            settings = {**model.image_encoder.config.to_dict(), **section.image_encoder}
            model.image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**settings)).eval()
    return model


def _fresh(network: torch.nn.Module, overrides: dict) -> torch.nn.Module:
    """A network of the same class from its config with overrides, with newly initialised weights."""
    return type(network).from_config({**network.config, **overrides})


def is_temporal(name: str) -> bool:
    """Whether a UNet parameter belongs to a temporal layer (temporal attention, resnets or mixing)."""
    return TEMPORAL_PARAMETER.search(name) is not None


def stage_parameters(unet: torch.nn.Module, kind: str, lora: bool) -> list[torch.nn.Parameter]:
    """Mark and return the UNet parameters a stage trains: image -> spatial, temporal -> temporal,
    video -> all; with a LoRA, only the LoRA parameters of those layers."""
    chosen = []
    for name, parameter in unet.named_parameters():
        wanted = kind == "video" or (kind == "temporal") == is_temporal(name)
        if lora:
            wanted = wanted and "lora_" in name
        parameter.requires_grad_(wanted)
        if wanted:
            chosen.append(parameter)
    return chosen
