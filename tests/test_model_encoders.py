"""The adapted encoders start exactly as frozen CLIP, and truncation of text changes nothing."""
import torch
from transformers import CLIPConfig, CLIPModel

from finecliper.clip.tokenizer import load_tokenizer
from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.clip.tokenizer import truncate_to_longest
from finecliper.model.text_encoder import TextEncoder
from finecliper.model.video_encoder import VideoEncoder


def tiny_clip(seed=0, context=77, proj=32) -> CLIPModel:
    torch.manual_seed(seed)
    cfg = CLIPConfig(
        text_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=1,
                         max_position_embeddings=context, vocab_size=49408, hidden_act="quick_gelu", eos_token_id=49407),
        vision_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=1,
                           image_size=32, patch_size=16, hidden_act="quick_gelu"),
        projection_dim=proj)
    cfg._attn_implementation = "sdpa"
    return CLIPModel(cfg).eval()


def random_tokens(n, length, context, seed=0):
    g = torch.Generator().manual_seed(seed)
    tok = torch.zeros(n, context, dtype=torch.long)
    for i in range(n):
        L = int(torch.randint(3, length + 1, (1,), generator=g))
        tok[i, 0] = 49406
        tok[i, 1:L - 1] = torch.randint(1, 49000, (L - 2,), generator=g)
        tok[i, L - 1] = 49407
    return tok


def test_adapters_zero_init_equal_frame_mean_clip():
    clip = tiny_clip()
    enc = VideoEncoder(clip.vision_model, num_frames=4, drop_path=0.2).eval()
    frames = torch.randn(3, 4, 3, 32, 32)
    with torch.no_grad():
        ours = clip.visual_projection(enc.forward_features(frames))
        per_frame = clip.get_image_features(pixel_values=frames.flatten(0, 1))
        per_frame = getattr(per_frame, "pooler_output", per_frame)
        ref = per_frame.view(3, 4, -1).mean(dim=1)
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()


def test_trained_adapters_change_the_output():
    clip = tiny_clip()
    enc = VideoEncoder(clip.vision_model, num_frames=4).eval()
    frames = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        before = enc.forward_features(frames)
        for blk in enc.blocks:
            torch.nn.init.normal_(blk.T_Adapter.D_fc2.weight, std=0.1)
        after = enc.forward_features(frames)
    assert (before - after).abs().max() > 1e-3


def test_temporal_adapter_mixes_frames():
    """With a non-zero temporal adapter, changing frame 0 changes frame 3's CLS; without, it does not."""
    clip = tiny_clip()
    enc = VideoEncoder(clip.vision_model, num_frames=4).eval()
    frames = torch.randn(1, 4, 3, 32, 32)
    frames2 = frames.clone()
    frames2[0, 0] += 1.0

    def cls_of_last_frame(x):
        captured = {}
        h = enc.ln_post.register_forward_hook(lambda m, i, o: captured.setdefault("cls", o))
        enc.forward_features(x)
        h.remove()
        return captured["cls"][3]

    with torch.no_grad():
        assert torch.allclose(cls_of_last_frame(frames), cls_of_last_frame(frames2), atol=1e-6)
        for blk in enc.blocks:
            torch.nn.init.normal_(blk.T_Adapter.D_fc2.weight, std=0.1)
        assert not torch.allclose(cls_of_last_frame(frames), cls_of_last_frame(frames2), atol=1e-4)


def test_text_encoder_zero_init_equals_clip_text_features():
    clip = tiny_clip()
    enc = TextEncoder(clip.text_model, clip.text_projection, num_sets=2).eval()
    tokens = random_tokens(5, 20, 77)
    with torch.no_grad():
        ref = clip.get_text_features(input_ids=tokens)
        ref = getattr(ref, "pooler_output", ref)
        for s in (0, 1):
            assert torch.allclose(enc(tokens, s), ref, atol=1e-5)


def test_text_encoder_eager_attention_matches_sdpa():
    clip = tiny_clip()
    enc = TextEncoder(clip.text_model, clip.text_projection).eval()
    tokens = random_tokens(4, 30, 77, seed=1)
    with torch.no_grad():
        sdpa = enc(tokens)
        clip.text_model.config._attn_implementation = "eager"
        eager = enc(tokens)
    assert torch.allclose(sdpa, eager, atol=1e-5)


def test_truncating_descriptions_equals_padding_to_248():
    clip = tiny_clip(context=248)
    enc = TextEncoder(clip.text_model, clip.text_projection).eval()
    for blk in enc.adapter_sets[0]:
        torch.nn.init.normal_(blk.D_fc2.weight, std=0.05)  # adapters trained: still no leak past EOT
    tokens = random_tokens(6, 60, 248, seed=2)
    seen = []
    hook = clip.text_model.embeddings.register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
    with torch.no_grad():
        ours = enc(tokens)
        ours_truncated_input = enc(truncate_to_longest(tokens))
    hook.remove()
    longest = int(tokens.argmax(-1).max()) + 1
    assert seen == [248, longest] and longest < 248  # the encoder runs what it is given; callers cut
    assert torch.allclose(ours, ours_truncated_input, atol=1e-5)
    # the full 248-token pass of our own stack (no truncation) gives the same features
    from finecliper.model.text_encoder import causal_block
    with torch.no_grad():
        x = clip.text_model.embeddings(input_ids=tokens)
        for layer, ad in zip(clip.text_model.encoder.layers, enc.adapter_sets[0]):
            x = ad(causal_block(layer, x))
        x = clip.text_model.final_layer_norm(x)
        full = clip.text_projection(x[torch.arange(6), tokens.argmax(-1)])
    assert torch.allclose(ours, full, atol=1e-5)


def test_truncate_to_longest_keeps_every_eot():
    tokens = random_tokens(4, 12, 77, seed=3)
    cut = truncate_to_longest(tokens)
    assert cut.shape[1] == int((tokens == 49407).nonzero()[:, 1].max()) + 1
    assert ((cut == 49407).sum(dim=1) == 1).all()


def test_map_encoder_features_at_init_equal_frame_mean_clip():
    clip = tiny_clip()
    cfg = ModelConfig(variant="star", num_frames=4, classes=["a", "b"])
    model = FineCLIPER(cfg, clip, tokenizer=load_tokenizer()).eval()
    maps = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        h_p, h_l = model.map_encoder.forward_features(torch.cat([maps, maps])).chunk(2)
        ref = clip.get_image_features(pixel_values=maps.flatten(0, 1))
        ref = getattr(ref, "pooler_output", ref).view(2, 4, -1).mean(1)
    assert torch.allclose(model.parsing_projection(h_p), ref, atol=1e-5)
    assert torch.allclose(model.landmarks_projection(h_l), ref, atol=1e-5)
