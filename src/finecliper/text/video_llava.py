"""The `video-llava` backend: Video-LLaVA writes a description of the facial changes in a clip.

``transformers.VideoLlavaForConditionalGeneration`` and the tokenizer are read from a user-supplied
model directory (e.g. a download of ``LanguageBind/Video-LLaVA-7B-hf``). The library's video
processor needs torchvision, which this project never installs, so frames are preprocessed here
exactly as its config says (shortest edge -> 224 bicubic, centre crop 224, x/255, CLIP mean/std;
equal to ``VideoLlavaImageProcessor`` on the same config, which the tests check) and the
``<video>`` placeholder is expanded to ``frames x (patches + 1)`` token ids by hand, as the
processor would.

Prompts are versioned files (``prompts/analyst_v1.txt``); their hash, and the model fingerprint, go
into every cache line. Label-free by default. ``label_conditioned=True`` reproduces the paper's
App. A.5 setting (the ground-truth label is in the prompt): outputs are then marked
``leaks_label: true``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from finecliper.data.augment import CLIP_MEAN, CLIP_STD
from finecliper.extras import require as require_extra

CHAT_TEMPLATE = "USER: <video>\n{prompt} ASSISTANT:"  # Video-LLaVA-7B-hf conversation format
VIDEO_TOKEN = "<video>"
LABEL_HINT = ("\nFor reference only, the ground-truth expression label of this video is \"{label}\". "
              "Still describe only facial movements and do not use any emotion words.")
DEFAULT_PROMPT = "analyst_v1"
NUM_FRAMES = 8  # Video-LLaVA's default


class VideoLlavaError(ValueError):
    """A model directory, prompt or input that the backend cannot use."""


# ----------------------------------------------------------------------------- prompt

def load_prompt(name_or_path: str = DEFAULT_PROMPT) -> str:
    """A bundled prompt by name (``analyst_v1``) or a text file path."""
    p = Path(name_or_path)
    if p.suffix == ".txt" or p.exists():
        if not p.is_file():
            raise VideoLlavaError(f"prompt file not found: {p}")
        text = p.read_text(encoding="utf-8")
    else:
        res = resources.files("finecliper.text").joinpath("prompts", f"{name_or_path}.txt")
        if not res.is_file():
            raise VideoLlavaError(f"no bundled prompt {name_or_path!r} (finecliper/text/prompts/{name_or_path}.txt)")
        text = res.read_text(encoding="utf-8")
    text = text.strip()
    if not text:
        raise VideoLlavaError(f"prompt {name_or_path!r} is empty")
    return text


def prompt_hash(prompt: str, label_conditioned: bool = False) -> str:
    """sha256 of everything that shapes the text the model sees (template, prompt, label hint)."""
    parts = [CHAT_TEMPLATE, prompt] + ([LABEL_HINT] if label_conditioned else [])
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def build_prompt(prompt: str, label: str | None = None) -> str:
    return CHAT_TEMPLATE.format(prompt=prompt + (LABEL_HINT.format(label=label) if label is not None else ""))


# ----------------------------------------------------------------------------- model identity

def model_fingerprint(model_dir: str | Path, edge_bytes: int = 1 << 20) -> str:
    """sha256 over the model's config/tokenizer files and, per weight file, its name, size and first and
    last ``edge_bytes``: distinguishes checkpoints in practice without hashing 14 GB on every run."""
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not any(p.name == "config.json" for p in files):
        raise VideoLlavaError(f"{model_dir}: no config.json; point --model at a Video-LLaVA HF model folder")
    for p in files:
        h.update(p.name.encode() + b"\x00")
        if p.suffix in (".safetensors", ".bin", ".pt", ".pth"):
            size = p.stat().st_size
            h.update(str(size).encode())
            with open(p, "rb") as f:
                h.update(f.read(edge_bytes))
                if size > edge_bytes:
                    f.seek(max(edge_bytes, size - edge_bytes))
                    h.update(f.read())
        elif p.suffix in (".json", ".model", ".txt", ".jinja"):
            h.update(p.read_bytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- frames

@dataclass(frozen=True)
class FrameProcessing:
    """What the model's (video) preprocessor config asks for."""

    shortest_edge: int = 224
    crop_hw: tuple[int, int] = (224, 224)
    resample: int = 3  # PIL BICUBIC
    rescale_factor: float = 1 / 255
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    do_resize: bool = True
    do_center_crop: bool = True
    do_normalize: bool = True
    source: str = "defaults of transformers' VideoLlavaVideoProcessor"


def read_frame_processing(model_dir: str | Path) -> FrameProcessing:
    """``video_preprocessor_config.json`` if present, else ``preprocessor_config.json``, else defaults."""
    model_dir = Path(model_dir)
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        path = model_dir / name
        if not path.is_file():
            continue
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise VideoLlavaError(f"{path}: not valid JSON ({e})") from e
        size = cfg.get("size", {"shortest_edge": 224})
        if isinstance(size, int):
            size = {"shortest_edge": size}
        if "shortest_edge" not in size:
            raise VideoLlavaError(f"{path}: size {size} has no 'shortest_edge'; only shortest-edge resizing is supported")
        crop = cfg.get("crop_size", {"height": 224, "width": 224})
        if isinstance(crop, int):
            crop = {"height": crop, "width": crop}
        return FrameProcessing(
            shortest_edge=int(size["shortest_edge"]),
            crop_hw=(int(crop["height"]), int(crop["width"])),
            resample=int(cfg.get("resample", 3)),
            rescale_factor=float(cfg.get("rescale_factor", 1 / 255)),
            mean=tuple(cfg.get("image_mean", CLIP_MEAN)),
            std=tuple(cfg.get("image_std", CLIP_STD)),
            do_resize=bool(cfg.get("do_resize", True)),
            do_center_crop=bool(cfg.get("do_center_crop", True)),
            do_normalize=bool(cfg.get("do_normalize", True)),
            source=str(path),
        )
    return FrameProcessing()


def uniform_indices(n_frames: int, k: int = NUM_FRAMES) -> np.ndarray:
    """Video-LLaVA's sampling: ``linspace(0, n-1, k)`` floored. (k,) int64."""
    if n_frames < 1:
        raise VideoLlavaError("a clip with no frames cannot be described")
    return np.linspace(0, n_frames - 1, k, dtype=np.int64)


def preprocess_frames(frames: np.ndarray, fp: FrameProcessing) -> torch.Tensor:
    """frames (T, H, W, 3) uint8 RGB -> (T, 3, crop_h, crop_w) float32, normalised."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VideoLlavaError(f"frames must be (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    ch, cw = fp.crop_hw
    out = []
    for f in frames:
        img = Image.fromarray(f)
        if fp.do_resize:
            w, h = img.size
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = fp.shortest_edge, int(fp.shortest_edge * long / short)
            size = (new_short, new_long) if w <= h else (new_long, new_short)  # PIL takes (w, h)
            img = img.resize(size, resample=fp.resample)
        a = np.asarray(img, dtype=np.float32)
        if fp.do_center_crop:
            h, w = a.shape[:2]
            if h < ch or w < cw:
                raise VideoLlavaError(f"frame {h}x{w} is smaller than the {ch}x{cw} crop after resizing")
            top, left = (h - ch) // 2, (w - cw) // 2
            a = a[top:top + ch, left:left + cw]
        a = a * np.float32(fp.rescale_factor)
        if fp.do_normalize:
            a = (a - np.asarray(fp.mean, np.float32)) / np.asarray(fp.std, np.float32)
        out.append(a.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


# ----------------------------------------------------------------------------- model

class VideoLlavaDescriber:
    """Batched greedy generation of facial-change descriptions.

    ``describe(clips, labels=None) -> list[str]`` with clips a list of (T, H, W, 3) uint8 frame arrays
    (already face crops); 8 frames are sampled uniformly from each.
    """

    def __init__(self, model_dir: str | Path, *, prompt: str | None = None, device: str | None = None,
                 dtype: torch.dtype | None = None, max_new_tokens: int = 200, num_frames: int = NUM_FRAMES,
                 label_conditioned: bool = False):
        from transformers import AutoTokenizer, VideoLlavaForConditionalGeneration

        require_extra("llava", "the video-llava backend")
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise VideoLlavaError(f"{self.model_dir}: no config.json; point --model at a Video-LLaVA HF model folder "
                                  "(e.g. a download of LanguageBind/Video-LLaVA-7B-hf)")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # bf16 on GPU; fp32 on CPU, where bf16 is many times slower (environment notes, TL;DR)
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            # device_map (accelerate): the weights go straight to the device in self.dtype, never a full
            # fp32 copy in host memory (28 GB for the 7B model)
            self.model = VideoLlavaForConditionalGeneration.from_pretrained(
                str(self.model_dir), dtype=self.dtype, device_map=str(self.device), local_files_only=True).eval()
        except (OSError, ValueError) as e:
            raise VideoLlavaError(f"{self.model_dir}: cannot load a Video-LLaVA model and tokenizer ({e})") from e
        cfg = self.model.config
        self.video_token_id = self.tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        if self.video_token_id != cfg.video_token_index:
            raise VideoLlavaError(f"{self.model_dir}: tokenizer maps {VIDEO_TOKEN} to {self.video_token_id}, "
                                  f"the model expects {cfg.video_token_index}")
        self.frames = read_frame_processing(self.model_dir)
        vc = cfg.vision_config
        if self.frames.crop_hw != (vc.image_size, vc.image_size):
            raise VideoLlavaError(f"{self.frames.source}: crop {self.frames.crop_hw} does not match the vision "
                                  f"tower's image_size {vc.image_size} ({self.model_dir / 'config.json'})")
        # video features keep the CLS token (see VideoLlavaModel.get_video_features)
        self.tokens_per_frame = (vc.image_size // vc.patch_size) ** 2 + 1
        self.num_frames = num_frames
        self.max_new_tokens = max_new_tokens
        self.label_conditioned = label_conditioned
        self.prompt = prompt if prompt is not None else load_prompt()
        self.prompt_hash = prompt_hash(self.prompt, label_conditioned)
        self.model_hash = model_fingerprint(self.model_dir)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id

    def encode_prompts(self, labels: Sequence[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ids with the video placeholder expanded -> (ids (B, L), attention mask (B, L))."""
        n_video = self.num_frames * self.tokens_per_frame
        rows = []
        for label in labels:
            ids = self.tokenizer(build_prompt(self.prompt, label), add_special_tokens=True)["input_ids"]
            if ids.count(self.video_token_id) != 1:
                raise VideoLlavaError(f"the prompt must hold exactly one {VIDEO_TOKEN} token after tokenisation")
            at = ids.index(self.video_token_id)
            rows.append(ids[:at] + [self.video_token_id] * n_video + ids[at + 1:])
        L = max(len(r) for r in rows)
        ids = torch.full((len(rows), L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), L), dtype=torch.long)
        for i, r in enumerate(rows):  # left padding: generation continues from the right edge
            ids[i, L - len(r):] = torch.tensor(r)
            mask[i, L - len(r):] = 1
        return ids, mask

    def pixel_values(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        """clips: list of (T_i, H, W, 3) uint8 -> (B, num_frames, 3, S, S)."""
        out = []
        for frames in clips:
            frames = np.asarray(frames)
            out.append(preprocess_frames(frames[uniform_indices(len(frames), self.num_frames)], self.frames))
        return torch.stack(out)

    @torch.inference_mode()
    def describe(self, clips: Sequence[np.ndarray], labels: Sequence[str] | None = None) -> list[str]:
        if self.label_conditioned:
            if labels is None or len(labels) != len(clips):
                raise VideoLlavaError("label-conditioned generation needs one label per clip")
            prompt_labels: list[str | None] = list(labels)
        else:
            prompt_labels = [None] * len(clips)  # never let a label reach a label-free prompt
        ids, mask = self.encode_prompts(prompt_labels)
        pixels = self.pixel_values(clips).to(self.device, self.dtype)
        out = self.model.generate(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device), pixel_values_videos=pixels,
            max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1, pad_token_id=self.pad_id)
        new = out[:, ids.shape[1]:]  # (B, new tokens)
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
