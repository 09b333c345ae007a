"""Description cache (resume, truncated last line, refusal), the captions backend, description tokens."""
import json
import warnings

import pytest
import torch

from finecliper.clip.tokenizer import truncate_to_longest
from finecliper.text.desc_cache import (
    DescriptionCache,
    DescriptionCacheError,
    load_descriptions,
    read_cache,
)
from finecliper.text.describe import CaptionsBackend, ClipItem, cache_identity, run_describe
from finecliper.text.description_extra import DescriptionExtra
from finecliper.text.token_stats import length_stats, mafw_caption_token_lengths

SOT, EOT = 49406, 49407


def ident(**kw):
    base = {"dataset": "mafw", "backend": "landmarks", "model_hash": "m1", "prompt_hash": None,
            "refine_hash": "r1", "leaks_label": False}
    return {**base, **kw}


@pytest.fixture(scope="module")
def clip_tokenizer():
    from finecliper.clip.tokenizer import load_tokenizer

    return load_tokenizer()


def test_header_lines_and_load(tmp_path):
    path = tmp_path / "d.jsonl"
    c = DescriptionCache(path, ident())
    c.append("00001", "The brows rise.", "The brows rise happily.", [{"text": "happily", "reason": "emotion adverb"}])
    c.append("00002", "The mouth opens.", "The mouth opens.", motions=[{"name": "mouth_open"}])
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    header, first = json.loads(lines[0]), json.loads(lines[1])
    assert header["format"] == "finecliper-descriptions" and header["backend"] == "landmarks"
    assert set(first) >= {"clip_id", "text", "raw", "removed", "backend", "model_hash", "prompt_hash",
                          "leaks_label", "time", "version"}
    assert first["model_hash"] == "m1" and first["removed"][0]["reason"] == "emotion adverb"
    assert json.loads(lines[2])["motions"] == [{"name": "mouth_open"}]
    assert load_descriptions(path) == {"00001": "The brows rise.", "00002": "The mouth opens."}


def test_resume_skips_described_clips(tmp_path):
    path = tmp_path / "cap.jsonl"
    backend = CaptionsBackend()
    items = [ClipItem(f"{i:05d}", caption=f"A man speaks angrily. The brows lower {i}.") for i in range(5)]
    c = DescriptionCache(path, cache_identity(backend, "mafw", refine=True))
    s1 = run_describe(items[:3], backend, c, batch_size=2)
    assert (s1.described, s1.already) == (3, 0)
    c2 = DescriptionCache(path, cache_identity(backend, "mafw", refine=True))  # a new run on the same file
    assert c2.done == {"00000", "00001", "00002"}
    s2 = run_describe(items, backend, c2, batch_size=2)
    assert (s2.described, s2.already) == (2, 3)
    header, entries = read_cache(path)
    assert sorted(entries) == [f"{i:05d}" for i in range(5)] and len(path.read_text().splitlines()) == 6
    e = entries["00004"]
    assert e["text"] == "A man speaks. The brows lower 4." and e["raw"] == "A man speaks angrily. The brows lower 4."
    assert e["removed"] == [{"text": "angrily", "reason": "emotion adverb"}]


def test_missing_caption_is_skipped_not_fatal(tmp_path):
    backend = CaptionsBackend()
    c = DescriptionCache(tmp_path / "c.jsonl", cache_identity(backend, "mafw", refine=False))
    s = run_describe([ClipItem("a", caption="The brows rise."), ClipItem("b")], backend, c)
    assert s.described == 1 and [cid for cid, _ in s.skipped] == ["b"]
    assert load_descriptions(tmp_path / "c.jsonl") == {"a": "The brows rise."}


def test_truncated_last_line_is_ignored_then_cut_on_append(tmp_path):
    path = tmp_path / "d.jsonl"
    c = DescriptionCache(path, ident())
    c.append("a", "The brows rise.", "The brows rise.")
    c.append("b", "The jaw drops.", "The jaw drops.")
    data = path.read_bytes()
    path.write_bytes(data[:-9])  # a crash in the middle of writing line "b"
    with pytest.warns(UserWarning, match="truncated last line"):
        assert load_descriptions(path) == {"a": "The brows rise."}
    with pytest.warns(UserWarning, match="truncated"):
        c2 = DescriptionCache(path, ident())
    assert c2.done == {"a"}
    c2.append("b", "The jaw drops.", "The jaw drops.")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file is whole again
        assert load_descriptions(path) == {"a": "The brows rise.", "b": "The jaw drops."}


def test_corrupt_middle_line_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    c = DescriptionCache(path, ident())
    c.append("a", "x.", "x.")
    c.append("b", "y.", "y.")
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:20]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DescriptionCacheError, match=r"d\.jsonl:2: corrupt line"):
        load_descriptions(path)


@pytest.mark.parametrize("field,value", [("backend", "video-llava"), ("model_hash", "m2"),
                                         ("prompt_hash", "p9"), ("refine_hash", None), ("leaks_label", True),
                                         ("dataset", "dfew")])
def test_cache_from_another_backend_model_or_prompt_is_refused(tmp_path, field, value):
    path = tmp_path / "d.jsonl"
    DescriptionCache(path, ident()).append("a", "x.", "x.")
    with pytest.raises(DescriptionCacheError, match=rf"{field}: cache has .*, now {value!r}.*another --out"):
        DescriptionCache(path, ident(**{field: value}))
    assert DescriptionCache(path, ident()).done == {"a"}  # the matching identity still resumes


def test_not_a_cache_file(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"hello": 1}\n')
    with pytest.raises(DescriptionCacheError, match="not a finecliper description cache"):
        DescriptionCache(p, ident())
    with pytest.raises(DescriptionCacheError, match="not found"):
        load_descriptions(tmp_path / "missing.jsonl")


def test_truncate_to_longest_by_eot_position():
    t = torch.zeros(3, 248, dtype=torch.long)
    t[0, :4] = torch.tensor([SOT, 320, 321, EOT])
    t[1, :7] = torch.tensor([SOT, 1, 2, 3, 4, 5, EOT])
    t[2, :2] = torch.tensor([SOT, EOT])
    out = truncate_to_longest(t)
    assert out.shape == (3, 7) and torch.equal(out, t[:, :7])
    assert truncate_to_longest(t[[0]]).shape == (1, 4)
    with pytest.raises(ValueError):
        truncate_to_longest(t[0])


def test_description_extra_tokens(tmp_path, clip_tokenizer):
    class Rec:
        def __init__(self, cid):
            self.clip_id = cid

    path = tmp_path / "d.jsonl"
    c = DescriptionCache(path, ident())
    c.append("a", "The brows rise.", "The brows rise.")
    c.append("b", " ".join(["the mouth opens"] * 100), "")  # 300+ tokens: cut, EOT kept last
    extra = DescriptionExtra(path, clip_tokenizer)
    ta = extra.load(Rec("a"), None, None, (224, 224))["description_tokens"]
    assert ta.shape == (248,) and ta.dtype == torch.long
    assert ta[0] == SOT and ta[int(ta.argmax())] == EOT and int(ta.argmax()) == 5  # SOT the brows rise . EOT
    assert ta[6:].eq(0).all()
    tb = extra.load(Rec("b"), None, None, (224, 224))["description_tokens"]
    assert tb[-1] == EOT and tb.ne(0).all()
    with pytest.raises(KeyError, match="no description for clip 'zz'"):
        extra.load(Rec("zz"), None, None, (224, 224))
    empty = DescriptionExtra({"a": "x"}, clip_tokenizer, missing="empty").load(Rec("q"), None, None, (1, 1))
    assert empty["description_tokens"][:2].tolist() == [SOT, EOT]
    batch = torch.stack([ta, tb, ta])
    assert truncate_to_longest(batch).shape == (3, 248)
    assert truncate_to_longest(torch.stack([ta, ta])).shape == (2, 6)


def test_mafw_fold1_captions_fit_in_248_tokens(annotations_dir, clip_tokenizer):
    stats, per_clip = mafw_caption_token_lengths(annotations_dir, fold=1, tokenizer=clip_tokenizer)
    # single-label with_caption fold 1: 6,423 train + 1,611 test (no neutral clips)
    assert stats.n == 8034 == len(per_clip)
    assert stats.over_248 == 0 and stats.max <= 248
    assert 15 < stats.mean < 40  # ~18 English words per caption (reference §5.3)
    print("\nMAFW fold-1 captions:", stats.format())
    # the first train caption: 21 words and stops, of which "excitedly" (exc|ited|ly), "frown" (fro|wn)
    # and "wrinkled" (wrink|led) split, so 21 + 2 + 1 + 1 = 25 BPE tokens, + SOT + EOT = 27
    assert per_clip["03747"] == 27


def test_length_stats_by_hand():
    s = length_stats([10, 20, 30, 80, 250])
    assert (s.n, s.max, s.over_77, s.over_248) == (5, 250, 2, 1)
    assert s.mean == pytest.approx(78.0) and s.median == 30
