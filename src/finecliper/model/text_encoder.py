"""Frozen CLIP (or Long-CLIP) text tower with a bottleneck adapter after every frozen layer (Eqs. 2–4)."""
from __future__ import annotations

import torch
from torch import nn

from finecliper.model.adapters import Adapter
from finecliper.model.frozen import FrozenRef


def causal_block(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One frozen pre-LN transformer block of transformers' CLIP text tower, causally masked."""
    h = layer.layer_norm1(x)
    if layer.self_attn.config._attn_implementation == "sdpa":
        a = layer.self_attn(hidden_states=h, is_causal=True)[0]
    else:  # eager and others take an additive mask
        n = x.shape[1]
        mask = torch.full((n, n), float("-inf"), device=x.device, dtype=x.dtype).triu_(1)
        a = layer.self_attn(hidden_states=h, attention_mask=mask)[0]
    x = x + a
    return x + layer.mlp(layer.layer_norm2(x))


class TextEncoder(nn.Module):
    """``forward(tokens (N, L), adapter_set=0) -> (N, E)``: projected EOT state (not normalised).

    ``num_sets`` independent adapter stacks share the frozen tower (positive and negative prompts each
    have their own, reference §10.4).
    """

    def __init__(self, text_model: nn.Module, projection: nn.Module, ratio: float = 0.25, num_sets: int = 1):
        super().__init__()
        self._text = FrozenRef(text_model)
        self._proj = FrozenRef(projection)
        dim, depth = text_model.config.hidden_size, text_model.config.num_hidden_layers
        self.adapter_sets = nn.ModuleList(
            nn.ModuleList(Adapter(dim, ratio, skip=True) for _ in range(depth)) for _ in range(num_sets))

    @property
    def context_length(self) -> int:
        return self._text().config.max_position_embeddings

    def forward(self, tokens: torch.Tensor, adapter_set: int = 0) -> torch.Tensor:
        # tokens (N, L): padding after EOT changes nothing (causal mask) but the cost, so batches come
        # cut after their longest EOT (``clip.tokenizer.truncate_to_longest``: prompts when set, descriptions
        # when collated); cutting here would make the shape data-dependent (a torch.compile graph break).
        tm = self._text()
        eot = tokens.argmax(dim=-1)
        x = tm.embeddings(input_ids=tokens)  # (N, L, D): token + position embeddings
        for layer, adapter in zip(tm.encoder.layers, self.adapter_sets[adapter_set]):
            x = adapter(causal_block(layer, x))
        x = tm.final_layer_norm(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), eot]
        return self._proj()(pooled)
