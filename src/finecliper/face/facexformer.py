"""FaceXFormer (Narayan et al. 2024) face parsing + 68 landmarks, on transformers' Swin (no torchvision).

Model, after the released code (``network/models/facexformer.py``), with the same head key names so that
the released ``ckpts/model.pt`` loads strictly after :func:`convert_released_state_dict`:

- backbone: Swin-B (embed 128, depths 2-2-18-2, heads 4-8-16-32, window 7) as transformers ``SwinModel``;
  the four stage outputs *before* patch merging are the multi-scale features (upstream's hooks on
  ``features.1/3/5/7``);
- fusion: each stage → Linear to 256, bilinear to the stride-4 grid (56×56), concatenated deepest first,
  1×1 conv (no bias) to 256;
- decoder: SAM two-way transformer (depth 2, dim 256, 8 heads, MLP 2048, ReLU) with random-Fourier
  positional encoding; 7 task tokens (landmarks, pose, attribute, visibility, age, gender, race) + 11 mask
  tokens; parsing = hypernetwork(mask tokens) · (two transposed convs of the image tokens) → (B, 11, 224, 224).

The analyser follows upstream ``inference.py``: face box (here our BlazeFace detector, ``face.crop.FaceDetector``, instead of MTCNN)
enlarged by 50 % (25 % per side, clipped to the frame), cropped at integer pixels, resized to 224×224
bicubic (PIL), ImageNet mean/std. Landmarks (68×2 in [-1, 1]) → crop pixels ``u = ((x+1)·224 − 1)/2`` →
frame pixels. The parsing argmax (224×224 of the crop) is warped nearest-neighbour onto the frame grid
(``FaceTrack.parsing``, size set by ``parsing_size``), background outside the crop.
"""
from __future__ import annotations

import dataclasses
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finecliper.state_dict import key_problems
import torch.nn.functional as F
from torch import nn

from finecliper.face.backend import FaceDetection, FaceTrack, build_track, check_frames
from finecliper.face.crop import FaceDetector
from finecliper.io import sha256_file
from finecliper.face.facexformer_convert import convert_released_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TASK_TOKENS = ("landmarks", "pose", "attribute", "visibility", "age", "gender", "race")
# Output widths of the task heads, in TASK_TOKENS order.
TASK_OUT = {"landmarks": 136, "pose": 3, "attribute": 40, "visibility": 29, "age": 8, "gender": 2, "race": 5}
NUM_MASKS = 11


@dataclass
class FaceXFormerConfig:
    """Defaults: the released model (Swin-B at 224)."""
    image_size: int = 224  # input side, px
    patch_size: int = 4  # Swin patch side, px
    embed_dim: int = 128  # Swin width of the first stage
    depths: list[int] = field(default_factory=lambda: [2, 2, 18, 2])  # Swin blocks per stage
    num_heads: list[int] = field(default_factory=lambda: [4, 8, 16, 32])  # attention heads per stage
    window_size: int = 7  # Swin attention window, patches
    decoder_dim: int = 256  # task decoder width
    decoder_depth: int = 2  # task decoder layers
    decoder_heads: int = 8  # task decoder attention heads
    decoder_mlp_dim: int = 2048  # task decoder MLP width


# ------------------------------------------------------------------------------------------------ model
class MLP(nn.Module):
    """``num_layers`` Linears with ReLU between them (keys ``layers.{i}``)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, num_layers: int):
        super().__init__()
        dims = [d_in] + [d_hidden] * (num_layers - 1) + [d_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class LayerNorm2d(nn.Module):
    """LayerNorm over channels of (B, C, H, W), eps 1e-6 (SAM's)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class Attention(nn.Module):
    """SAM attention whose q/k/v live in ``dim // downsample`` channels."""

    def __init__(self, dim: int, heads: int, downsample: int = 1):
        super().__init__()
        inner = dim // downsample
        if inner % heads:
            raise ValueError(f"{heads} heads do not divide the attention width {inner}")
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, inner), nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # q: (B, Nq, D), k/v: (B, Nk, D) → (B, Nq, D)
        def split(x):  # (B, N, inner) → (B, heads, N, inner/heads)
            return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q_proj(q)), split(self.k_proj(k)), split(self.v_proj(v)))
        return self.out_proj(out.transpose(1, 2).flatten(2))


class MLPBlock(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayBlock(nn.Module):
    """Tokens self-attend, attend to the image, MLP; then the image attends to the tokens (post-norm)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, skip_first_pe: bool):
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.cross_attn_token_to_image = Attention(dim, heads, 2)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.cross_attn_image_to_token = Attention(dim, heads, 2)
        self.norm1, self.norm2, self.norm3, self.norm4 = (nn.LayerNorm(dim) for _ in range(4))
        self.skip_first_pe = skip_first_pe

    def forward(self, queries, keys, query_pe, key_pe):
        # queries: (B, Nt, D) tokens; keys: (B, HW, D) image
        if self.skip_first_pe:
            queries = self.self_attn(queries, queries, queries)  # replaces, as in SAM's first layer
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth: int, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, i == 0) for i in range(depth))
        self.final_attn_token_to_image = Attention(dim, heads, 2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor):
        # image, image_pe: (B, D, h, w); tokens: (B, Nt, D) → tokens (B, Nt, D), image tokens (B, hw, D)
        keys, key_pe = image.flatten(2).transpose(1, 2), image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        queries = queries + self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries), keys


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of the normalised grid position (SAM)."""

    def __init__(self, num_feats: int):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_feats))

    def forward(self, h: int, w: int) -> torch.Tensor:
        g = self.positional_encoding_gaussian_matrix  # (2, F)
        ys = (torch.arange(h, device=g.device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=g.device, dtype=torch.float32) + 0.5) / w
        coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
        proj = 2 * math.pi * ((2 * coords - 1) @ g)                             # (h, w, F)
        return torch.cat([proj.sin(), proj.cos()], dim=-1).permute(2, 0, 1)    # (2F, h, w)


class FaceDecoder(nn.Module):
    def __init__(self, dim: int, transformer: TwoWayTransformer):
        super().__init__()
        self.transformer = transformer
        for name in TASK_TOKENS:
            setattr(self, f"{name}_token", nn.Embedding(1, dim))
        self.mask_tokens = nn.Embedding(NUM_MASKS, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, 2, 2), LayerNorm2d(dim // 4), nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, 2, 2), nn.GELU())
        self.output_hypernetwork_mlps = MLP(dim, dim, dim // 8, 3)
        for name in TASK_TOKENS:
            setattr(self, f"{name}_prediction_head", MLP(dim, dim, TASK_OUT[name], 3))

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor) -> dict[str, torch.Tensor]:
        # image: (B, D, h, w), image_pe: (1, D, h, w)
        b, d, h, w = image.shape
        tokens = torch.cat([getattr(self, f"{n}_token").weight for n in TASK_TOKENS] + [self.mask_tokens.weight])
        hs, src = self.transformer(image, image_pe.expand(b, -1, -1, -1), tokens.unsqueeze(0).expand(b, -1, -1))
        out = {n: getattr(self, f"{n}_prediction_head")(hs[:, i]) for i, n in enumerate(TASK_TOKENS)}
        up = self.output_upscaling(src.transpose(1, 2).reshape(b, d, h, w))      # (B, D/8, 4h, 4w)
        hyper = self.output_hypernetwork_mlps(hs[:, len(TASK_TOKENS):])          # (B, 11, D/8)
        out["parsing"] = (hyper @ up.flatten(2)).unflatten(-1, up.shape[2:])     # (B, 11, 4h, 4w)
        out["landmarks"] = out["landmarks"].unflatten(-1, (68, 2))               # (B, 68, 2) in [-1, 1]
        return out


class FaceXFormerMLP(nn.Module):
    """Per-stage projection to the decoder width (key ``proj``)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out)


def swin_config(cfg: FaceXFormerConfig):
    from transformers import SwinConfig

    return SwinConfig(image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=3, embed_dim=cfg.embed_dim,
                      depths=list(cfg.depths), num_heads=list(cfg.num_heads), window_size=cfg.window_size,
                      mlp_ratio=4.0, qkv_bias=True, hidden_act="gelu", drop_path_rate=0.0,
                      use_absolute_embeddings=False, layer_norm_eps=1e-5)


class FaceXFormer(nn.Module):
    def __init__(self, cfg: FaceXFormerConfig | None = None):
        super().__init__()
        from transformers import SwinModel

        self.cfg = cfg = cfg or FaceXFormerConfig()
        if len(cfg.depths) != 4 or len(cfg.num_heads) != 4:
            raise ValueError(f"FaceXFormer needs 4 Swin stages, got depths {cfg.depths}, heads {cfg.num_heads}")
        d = cfg.decoder_dim
        self.backbone = SwinModel(swin_config(cfg), add_pooling_layer=False)
        self.pe_layer = PositionEmbeddingRandom(d // 2)
        self.linear_c = nn.ModuleList(FaceXFormerMLP(cfg.embed_dim * 2 ** i, d) for i in range(4))
        self.linear_fuse = nn.Conv2d(4 * d, d, kernel_size=1, bias=False)
        self.face_decoder = FaceDecoder(d, TwoWayTransformer(cfg.decoder_depth, d, cfg.decoder_heads,
                                                             cfg.decoder_mlp_dim))

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, 3, S, S) → 4 stage outputs before patch merging, (B, C_i, S/4/2^i, S/4/2^i)."""
        emb, dims = self.backbone.embeddings(x)
        enc = self.backbone.encoder(emb, dims, output_hidden_states=True,
                                    output_hidden_states_before_downsampling=True)
        return list(enc.reshaped_hidden_states[1:])  # [0] is the patch embedding

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, 224, 224) ImageNet-normalised → landmarks (B, 68, 2), parsing logits (B, 11, 224, 224),
        pose (B, 3), attribute (B, 40), visibility (B, 29), age (B, 8), gender (B, 2), race (B, 5)."""
        feats = self.stage_features(x)
        grid = feats[0].shape[2:]
        fused = []
        for f, mlp in zip(feats, self.linear_c):
            y = mlp.proj(f.flatten(2).transpose(1, 2)).transpose(1, 2).unflatten(-1, f.shape[2:])  # (B, D, h, w)
            fused.append(F.interpolate(y, size=grid, mode="bilinear", align_corners=False))
        image = self.linear_fuse(torch.cat(fused[::-1], dim=1))  # deepest first, as upstream; (B, D, S/4, S/4)
        pe = self.pe_layer(*grid).unsqueeze(0)
        return self.face_decoder(image, pe)


# ------------------------------------------------------------------------------------------------ loading
def _short(keys, n: int = 8) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" … ({len(keys)} in all)" if len(keys) > n else "")


def read_checkpoint(path: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The released ``model.pt`` (``{"state_dict_backbone": sd}``), a bare state dict, or a .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FaceXFormer checkpoint not found: {path}. Download ckpts/model.pt from "
                                "the kartiknarayan/facexformer model repository and pass its path.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: holds Python objects beyond tensors, refused by torch.load(weights_only=True) "
                         f"({str(e).splitlines()[0]}). Only if you trust this file, pass allow_pickle=True.") from e
    except Exception as e:  # truncated or not a torch file at all
        raise ValueError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e})") from e
    if isinstance(obj, dict) and "state_dict_backbone" in obj:
        obj = obj["state_dict_backbone"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        what = _short(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path}: expected a dict with key 'state_dict_backbone' (or a state dict of tensors), "
                         f"found {what}")
    return obj


def load_state_dict_strict(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Load with every key and shape checked; errors name ``source`` and the keys."""
    problems = key_problems(sd, model.state_dict())
    if problems:
        raise ValueError(f"{source}: does not fit FaceXFormer ({'; '.join(problems)}). Is it the released "
                         "FaceXFormer checkpoint, and does the model config match it?")
    model.load_state_dict(sd, strict=True)


def load_facexformer(path: str | Path, allow_pickle: bool = False, cfg: FaceXFormerConfig | None = None,
                     device: str | torch.device = "cpu") -> FaceXFormer:
    """The released checkpoint → an eval-mode :class:`FaceXFormer` on ``device``."""
    sd = convert_released_state_dict(read_checkpoint(path, allow_pickle))
    model = FaceXFormer(cfg)
    load_state_dict_strict(model, sd, str(path))
    return model.eval().to(device)


# ------------------------------------------------------------------------------------------------ geometry
def enlarge_box(box: np.ndarray, frame_hw: tuple[int, int], margin: float = 0.5) -> np.ndarray:
    """Upstream ``adjust_bbox``: grow by ``margin`` of width/height (half per side), clip, truncate to int.

    → (x0, y0, x1, y1) int64 pixel bounds of the crop (x1, y1 exclusive), at least 1 px wide.
    """
    h, w = frame_hw
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = (x1 - x0) * margin / 2, (y1 - y0) * margin / 2
    out = np.array([max(0.0, x0 - dx), max(0.0, y0 - dy), min(w, x1 + dx), min(h, y1 + dy)])
    out = np.trunc(out).astype(np.int64)  # PIL's crop((int(x0), ...)) as upstream
    out[0], out[1] = min(out[0], w - 1), min(out[1], h - 1)
    out[2], out[3] = max(out[2], out[0] + 1), max(out[3], out[1] + 1)
    return out


def crop_to_frame_matrix(crop: np.ndarray, size: int) -> np.ndarray:
    """(2, 3) affine: pixel-centre coords of the ``size``² resized crop → frame pixel-centre coords."""
    sx, sy = (crop[2] - crop[0]) / size, (crop[3] - crop[1]) / size
    # crop pixel u spans [u-0.5, u+0.5]; its left edge u=-0.5 is the frame's x0-0.5
    return np.array([[sx, 0.0, crop[0] - 0.5 + 0.5 * sx], [0.0, sy, crop[1] - 0.5 + 0.5 * sy]])


def landmarks_to_frame(lm: np.ndarray, crop: np.ndarray, size: int = 224) -> np.ndarray:
    """Model landmarks (..., 68, 2) in [-1, 1] → frame pixels (align_corners=False decoding)."""
    u = ((np.asarray(lm, np.float64) + 1) * size - 1) / 2
    m = crop_to_frame_matrix(crop, size)
    return (u * m[[0, 1], [0, 1]] + m[:, 2]).astype(np.float32)


def labels_to_map(labels: np.ndarray, crop: np.ndarray, frame_hw: tuple[int, int],
                  map_hw: tuple[int, int]) -> np.ndarray:
    """Crop label map (S, S) uint8 → (map_h, map_w) uint8 covering the frame; nearest, 0 outside the crop."""
    import cv2

    m = crop_to_frame_matrix(crop, labels.shape[0])
    sx, sy = map_hw[1] / frame_hw[1], map_hw[0] / frame_hw[0]
    # frame → map: x_m = (x_f + 0.5)·sx − 0.5
    to_map = np.array([[m[0, 0] * sx, 0.0, (m[0, 2] + 0.5) * sx - 0.5], [0.0, m[1, 1] * sy, (m[1, 2] + 0.5) * sy - 0.5]])
    return cv2.warpAffine(labels, to_map, (map_hw[1], map_hw[0]), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def preprocess_crop(frame: np.ndarray, crop: np.ndarray, size: int = 224) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (3, size, size) float: PIL crop, bicubic resize, ImageNet normalisation."""
    from PIL import Image

    img = Image.fromarray(frame).crop(tuple(int(v) for v in crop)).resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img, np.float32) / 255.0).permute(2, 0, 1)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


# ------------------------------------------------------------------------------------------------ analyser
@dataclass
class FaceXFormerAnalyserConfig:
    margin: float = 0.5                 # face box enlarged by 50 % of its size (upstream inference.py)
    detector_model: int = 0             # BlazeFace: 0 short range (tight DFER crops), 1 full range
    min_detection_confidence: float = 0.5  # BlazeFace score threshold
    min_confidence: float = 0.5         # below: frame invalid, reason "low confidence"
    multiple_faces: str = "largest"     # or "invalid"
    parsing_size: int = 224             # longer side of the stored frame label map (0 = frame size)
    model: FaceXFormerConfig = field(default_factory=FaceXFormerConfig)  # the network's shape (defaults: the released Swin-B model)


@dataclass
class FaceXFormerDetection(FaceDetection):
    crop: np.ndarray | None = None      # (4,) int64 crop bounds in the frame
    crop_labels: np.ndarray | None = None  # (224, 224) uint8 LaPa ids of the crop


class FaceXFormerAnalyser:
    """FaceAnalyser: BlazeFace face boxes, FaceXFormer landmarks and parsing (no depth: ``depth68`` is NaN). Frames are independent
    (``video``/``reset`` change nothing: the detector runs on every frame)."""
    name = "facexformer"

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu", batch_size: int = 16,
                 cfg: FaceXFormerAnalyserConfig | None = None, allow_pickle: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.cfg = cfg or FaceXFormerAnalyserConfig()
        self.checkpoint, self.device, self.batch_size = Path(checkpoint), torch.device(device), batch_size
        self.model = load_facexformer(checkpoint, allow_pickle, self.cfg.model, self.device)
        self.detector = FaceDetector(self.cfg.detector_model, self.cfg.min_detection_confidence)
        self._sha256: str | None = None

    def describe(self) -> dict[str, Any]:
        import transformers

        if self._sha256 is None:
            self._sha256 = sha256_file(self.checkpoint)
        return {"backend": self.name, "checkpoint_sha256": self._sha256, "torch": torch.__version__,
                "transformers": transformers.__version__, "detector": self.detector.describe(),
                "params": dataclasses.asdict(self.cfg)}

    def close(self) -> None:
        self.detector.close()

    @torch.inference_mode()
    def _run(self, crops: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """N preprocessed crops → landmarks (N, 68, 2) in [-1, 1], labels (N, S, S) uint8."""
        size = self.cfg.model.image_size
        lms, labels = [np.zeros((0, 68, 2), np.float32)], [np.zeros((0, size, size), np.uint8)]
        for i in range(0, len(crops), self.batch_size):
            out = self.model(torch.stack(crops[i:i + self.batch_size]).to(self.device))
            lms.append(out["landmarks"].float().cpu().numpy())
            labels.append(out["parsing"].argmax(1).to(torch.uint8).cpu().numpy())
        return np.concatenate(lms), np.concatenate(labels)

    def detect(self, frames: np.ndarray, video: bool = False, *, reset: bool = True) -> list[list[FaceDetection]]:
        frames = check_frames(frames)
        hw = frames.shape[1:3]
        size = self.cfg.model.image_size
        faces = [self.detector(f) for f in frames]
        jobs = [(t, d, enlarge_box(d.box, hw, self.cfg.margin)) for t, dets in enumerate(faces) for d in dets]
        lms, labels = self._run([preprocess_crop(frames[t], c, size) for t, _, c in jobs])
        out: list[list[FaceDetection]] = [[] for _ in frames]
        for (t, d, c), lm, lab in zip(jobs, lms, labels):
            out[t].append(FaceXFormerDetection(landmarks_to_frame(lm, c, size), d.box, d.confidence,
                                               crop=c, crop_labels=lab))
        return out  # the detector's order: largest first

    def analyse(self, frames: np.ndarray, video: bool = False, *, reset: bool = True) -> FaceTrack:
        dets = self.detect(frames, video, reset=reset)
        hw = tuple(np.asarray(frames).shape[1:3])
        c = self.cfg
        return build_track(dets, hw, c.parsing_size, lambda d, map_hw: labels_to_map(d.crop_labels, d.crop, hw, map_hw),
                           min_confidence=c.min_confidence, multiple_faces=c.multiple_faces,
                           meta={"backend": self.name, "parsing": "frame grid (nearest from the 224 crop)"})
