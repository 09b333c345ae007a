"""Real CLIP checkpoints (OpenAI, open_clip, transformers, Long-CLIP) as one transformers ``CLIPModel``.

    backbone = finecliper.clip.load("ViT-B-16.pt", allow_pickle=True)   # OpenAI's TorchScript file
    tokens = backbone.tokenize(["a photo of a happy face"])              # (1, 77) LongTensor
    text = backbone.encode_text(tokens)                                   # (1, 512)
"""
from finecliper.clip.convert import (
    ConversionError,
    hf_to_openai,
    infer_clip_config,
    longclip_effective_pe,
    openai_to_hf,
    stretch_positional_embedding,
)
from finecliper.clip.formats import FORMATS, CheckpointError, detect_format, read_checkpoint
from finecliper.clip.load import CLIP_MEAN, CLIP_STD, ClipBackbone, load, normalize_images
from finecliper.clip.tokenizer import ClipTokenizer, TokenizerError, load_tokenizer

__all__ = [
    "CLIP_MEAN", "CLIP_STD", "FORMATS", "CheckpointError", "ClipBackbone", "ClipTokenizer", "ConversionError",
    "TokenizerError", "detect_format", "hf_to_openai", "infer_clip_config", "load", "load_tokenizer",
    "longclip_effective_pe", "normalize_images", "openai_to_hf", "read_checkpoint", "stretch_positional_embedding",
]
