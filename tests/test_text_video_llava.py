"""The video-llava backend on a tiny random Video-LLaVA (same architecture, saved with save_pretrained)."""
import json
import shutil

import numpy as np
import pytest
import torch

from finecliper.text.desc_cache import DescriptionCache, read_cache
from finecliper.text.describe import ClipItem, VideoLlavaBackend, cache_identity, run_describe
from finecliper.text.video_llava import (
    LABEL_HINT,
    FrameProcessing,
    VideoLlavaDescriber,
    VideoLlavaError,
    build_prompt,
    load_prompt,
    model_fingerprint,
    preprocess_frames,
    prompt_hash,
    read_frame_processing,
    uniform_indices,
)

IMAGE, PATCH = 28, 14  # 2x2 patches + CLS = 5 video tokens per frame, 40 for 8 frames


def build_tiny_model(out):
    """Tiny VideoLlava + a byte-level BPE tokenizer trained offline on the prompt, with <video>/<image>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (CLIPVisionConfig, LlamaConfig, PreTrainedTokenizerFast, VideoLlavaConfig,
                              VideoLlavaForConditionalGeneration)

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<video>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([load_prompt(), LABEL_HINT, "USER: ASSISTANT: The brows rise. happiness sadness"], trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                 pad_token="<pad>", additional_special_tokens=["<image>", "<video>"])
    hf.save_pretrained(out)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                              image_size=IMAGE, patch_size=PATCH, projection_dim=32)
    text = LlamaConfig(vocab_size=len(hf), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                       bos_token_id=1, eos_token_id=2, pad_token_id=3)
    cfg = VideoLlavaConfig(vision_config=vision, text_config=text,
                           image_token_index=hf.convert_tokens_to_ids("<image>"),
                           video_token_index=hf.convert_tokens_to_ids("<video>"),
                           video_seq_length=8 * 5, image_seq_length=4)
    torch.manual_seed(0)
    VideoLlavaForConditionalGeneration(cfg).save_pretrained(out)
    (out / "video_preprocessor_config.json").write_text(json.dumps({
        "size": {"shortest_edge": IMAGE}, "crop_size": {"height": IMAGE, "width": IMAGE}, "resample": 3,
        "rescale_factor": 1 / 255, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "do_resize": True, "do_center_crop": True,
        "do_normalize": True}))
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_video_llava"))


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (20, 40, 34, 3), dtype=np.uint8),  # portrait-ish, 20 frames
            rng.integers(0, 256, (9, 30, 45, 3), dtype=np.uint8)]  # landscape, 9 frames


def test_uniform_indices_match_video_llava_sampling():
    assert uniform_indices(20).tolist() == [0, 2, 5, 8, 10, 13, 16, 19]
    assert uniform_indices(3).tolist() == [0, 0, 0, 0, 1, 1, 1, 2]
    with pytest.raises(VideoLlavaError):
        uniform_indices(0)


@pytest.mark.parametrize("hw", [(40, 34), (30, 45), (28, 28), (300, 200)])
def test_frame_preprocessing_equals_the_library_processor(hw):
    from transformers import VideoLlavaImageProcessor

    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (3, *hw, 3), dtype=np.uint8)
    fp = FrameProcessing(shortest_edge=IMAGE, crop_hw=(IMAGE, IMAGE))
    ours = preprocess_frames(frames, fp)  # (3, 3, 28, 28)
    lib = VideoLlavaImageProcessor(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE})
    ref = lib(images=list(frames), return_tensors="pt", return_legacy_image_output=False)["pixel_values"]
    assert ours.shape == ref.shape == (3, 3, IMAGE, IMAGE)
    assert torch.allclose(ours, ref.float(), atol=1e-5)


def test_frame_processing_is_read_from_the_model_folder(model_dir, tmp_path):
    fp = read_frame_processing(model_dir)
    assert fp.shortest_edge == IMAGE and fp.crop_hw == (IMAGE, IMAGE) and fp.source.endswith("video_preprocessor_config.json")
    assert read_frame_processing(tmp_path) == FrameProcessing()  # nothing there: VideoLlavaVideoProcessor defaults
    (tmp_path / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(VideoLlavaError, match="preprocessor_config.json: not valid JSON"):
        read_frame_processing(tmp_path)


def test_prompt_file_and_hash():
    p = load_prompt()
    assert "facial expression analyst" in p and "do not name or guess any emotion" in p
    assert prompt_hash(p) != prompt_hash(p, label_conditioned=True) != prompt_hash(p + " ")
    assert build_prompt("X") == "USER: <video>\nX ASSISTANT:"
    assert '"anger"' in build_prompt("X", "anger")
    with pytest.raises(VideoLlavaError, match="no bundled prompt"):
        load_prompt("analyst_v999")


def test_batched_generation_with_different_prompt_lengths_equals_one_by_one(model_dir, clips):
    d = VideoLlavaDescriber(model_dir, max_new_tokens=8, label_conditioned=True)
    assert d.device.type == "cpu" and d.model.dtype == torch.float32
    labels = ["happiness", "disappointment"]
    ids, mask = d.encode_prompts(labels)
    lengths = mask.sum(1).tolist()
    assert lengths[0] != lengths[1]  # the labels tokenise to different lengths: real left padding
    assert (ids == d.video_token_id).sum(1).tolist() == [8 * 5, 8 * 5]
    short = int(np.argmin(lengths))
    assert mask[short, : ids.shape[1] - lengths[short]].eq(0).all() and ids[short, 0] == d.pad_id
    batched = d.describe(clips, labels)
    single = [d.describe([c], [lb])[0] for c, lb in zip(clips, labels)]
    assert batched == single and all(isinstance(t, str) for t in batched)
    assert any(t for t in batched)  # the random model does emit tokens
    with pytest.raises(VideoLlavaError, match="one label per clip"):
        d.describe(clips)


def test_label_free_prompts_never_carry_a_label(model_dir, clips):
    d = VideoLlavaDescriber(model_dir, max_new_tokens=4)
    ids, mask = d.encode_prompts([None, None])
    assert mask.all()  # same prompt for every clip, no padding
    text = d.tokenizer.decode(ids[0])
    assert "label" not in text and "happiness" not in text
    assert d.describe(clips, ["happiness", "sadness"]) == d.describe(clips)  # labels are ignored label-free


def test_backend_writes_cache_lines_with_model_and_prompt_hashes(model_dir, clips, tmp_path):
    # clips as frame folders, read back through finecliper.data.frames
    from PIL import Image

    items = []
    for i, frames in enumerate(clips):
        folder = tmp_path / "clips" / f"c{i}"
        folder.mkdir(parents=True)
        for j, f in enumerate(frames):
            Image.fromarray(f).save(folder / f"{j:03d}.png")
        items.append(ClipItem(f"c{i}", folder, label=["happiness", "disappointment"][i]))
    items.append(ClipItem("gone", tmp_path / "clips" / "nope", label="anger"))
    d = VideoLlavaDescriber(model_dir, max_new_tokens=6, label_conditioned=True)
    backend = VideoLlavaBackend(d)
    out = tmp_path / "mafw_video-llava.jsonl"
    cache = DescriptionCache(out, cache_identity(backend, "mafw", refine=True))
    summary = run_describe(items, backend, cache, batch_size=3)
    assert summary.described == 2 and [c for c, _ in summary.skipped] == ["gone"]
    header, entries = read_cache(out)
    assert header["model_hash"] == model_fingerprint(model_dir) and header["prompt_hash"] == d.prompt_hash
    assert header["leaks_label"] is True
    for i, cid in enumerate(["c0", "c1"]):
        e = entries[cid]
        assert e["model_hash"] == model_fingerprint(model_dir) and e["prompt_hash"] == prompt_hash(load_prompt(), True)
        assert e["leaks_label"] is True and e["label"] == items[i].label and e["backend"] == "video-llava"
        # PNG frames are lossless: the cache holds exactly what the describer makes of the arrays
        assert e["raw"] == d.describe([clips[i][uniform_indices(len(clips[i]))]], [items[i].label])[0]


def test_model_fingerprint_tracks_weights_and_config(model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    assert model_fingerprint(copy) == model_fingerprint(model_dir)
    w = copy / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0xFF  # one byte of the last tensor
    w.write_bytes(bytes(data))
    assert model_fingerprint(copy) != model_fingerprint(model_dir)
    with pytest.raises(VideoLlavaError, match="no config.json"):
        model_fingerprint(tmp_path)


def test_crop_that_does_not_fit_the_vision_tower_is_refused(model_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    cfg = json.loads((bad / "video_preprocessor_config.json").read_text())
    cfg["crop_size"] = {"height": 224, "width": 224}
    (bad / "video_preprocessor_config.json").write_text(json.dumps(cfg))
    with pytest.raises(VideoLlavaError, match=r"crop \(224, 224\) does not match the vision tower's image_size 28"):
        VideoLlavaDescriber(bad)
