"""Frozen CLIP ViT with AIM adapters: temporal, spatial and MLP-parallel (reference §1).

The frozen parts are transformers' ``CLIPVisionTransformer`` modules, reused as they are: each block's
``layer_norm1``/``self_attn`` serve both the spatial and the temporal attention (AIM re-uses the frozen
attention over time), ``layer_norm2``/``mlp`` the joint step.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from finecliper.model.adapters import Adapter, DropPath
from finecliper.model.frozen import FrozenRef


class AdaptedBlock(nn.Module):
    """Trainable parts of one adapted ViT block; the frozen layer is passed in."""

    def __init__(self, dim: int, ratio: float, scale: float, drop_path: float):
        super().__init__()
        self.T_Adapter = Adapter(dim, ratio, skip=False)
        self.S_Adapter = Adapter(dim, ratio, skip=True)
        self.MLP_Adapter = Adapter(dim, ratio, skip=False)
        self.scale = scale
        self.drop_path = DropPath(drop_path)

    def forward(self, layer: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        # x: (B*T, N, D), batch-first as in transformers
        n = x.shape[1]
        attn = lambda h: layer.self_attn(hidden_states=h)[0]  # noqa: E731  frozen, full attention
        # temporal: frames become the sequence, every spatial position of every clip a batch element
        xt = rearrange(x, "(b t) n d -> (b n) t d", t=num_frames)
        xt = self.T_Adapter(attn(layer.layer_norm1(xt)))
        xt = rearrange(xt, "(b n) t d -> (b t) n d", n=n)
        x = x + self.drop_path(xt)
        # spatial: the frozen residual plus its adapter (skip adapter: a + A(a))
        x = x + self.S_Adapter(attn(layer.layer_norm1(x)))
        # joint: frozen MLP with a scaled adapter in parallel
        xn = layer.layer_norm2(x)
        return x + layer.mlp(xn) + self.drop_path(self.scale * self.MLP_Adapter(xn))


class VideoEncoder(nn.Module):
    """``forward_features(frames (B,T,3,H,W)) -> (B, D_vision)``: mean over frames of ``ln_post(CLS_t)``.

    Projection into the joint space is kept outside (each modality has its own, see ``FineCLIPER``).
    """

    def __init__(self, vision_model: nn.Module, num_frames: int, ratio: float = 0.25, scale: float = 0.5,
                 drop_path: float = 0.1, grad_checkpoint: bool = False, blocks: nn.ModuleList | None = None):
        super().__init__()
        cfg = vision_model.config
        dim, depth = cfg.hidden_size, cfg.num_hidden_layers
        self._vision = FrozenRef(vision_model)
        self.num_frames = num_frames
        self.grad_checkpoint = grad_checkpoint
        self.temporal_embedding = nn.Parameter(torch.zeros(1, num_frames, dim))
        # trainable copy: the frozen tower's own post-LN stays untouched for other users of it
        self.ln_post = copy.deepcopy(vision_model.post_layernorm)
        if blocks is None:
            rates = np.linspace(0, drop_path, depth).tolist()
            blocks = nn.ModuleList(AdaptedBlock(dim, ratio, scale, r) for r in rates)
        self.blocks = blocks  # may be shared with another encoder (map_encoder_shares_video_adapters)

    def forward_features(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (B, T, 3, H, W) -> (B, D)
        vm = self._vision()
        b, t = frames.shape[:2]
        if t != self.num_frames:
            raise ValueError(f"expected {self.num_frames} frames per clip, got {t}")
        x = vm.embeddings(rearrange(frames, "b t c h w -> (b t) c h w"))  # (B*T, N, D), CLS + pos added
        n = x.shape[1]
        x = rearrange(x, "(b t) n d -> (b n) t d", t=t) + self.temporal_embedding  # every token of frame t
        x = rearrange(x, "(b n) t d -> (b t) n d", n=n)
        x = vm.pre_layrnorm(x)
        for layer, block in zip(vm.encoder.layers, self.blocks):
            if self.grad_checkpoint and self.training:
                x = checkpoint(block, layer, x, t, use_reentrant=False)
            else:
                x = block(layer, x, t)
        cls = self.ln_post(x[:, 0])  # (B*T, D)
        return rearrange(cls, "(b t) d -> b t d", t=t).mean(dim=1)


class FrameEncoder(nn.Module):
    """The frozen CLIP image tower applied frame by frame, as is: ``forward_features(frames (B,T,3,H,W)) -> (B, D)``,
    the mean over frames of CLIP's own ``post_layernorm(CLS_t)``.

    No adapters, no temporal embedding, nothing trainable (paper Tab. 6, "Video ✗"); the same interface as
    :class:`VideoEncoder`.
    """

    def __init__(self, vision_model: nn.Module, num_frames: int):
        super().__init__()
        self._vision = FrozenRef(vision_model)
        self.num_frames = num_frames

    def forward_features(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        if t != self.num_frames:
            raise ValueError(f"expected {self.num_frames} frames per clip, got {t}")
        cls = self._vision()(pixel_values=rearrange(frames, "b t c h w -> (b t) c h w")).pooler_output  # (B*T, D)
        return rearrange(cls, "(b t) d -> b t d", t=t).mean(dim=1)
