"""CLIP tokenizer: ids equal OpenAI's SimpleTokenizer, clip.tokenize padding/truncation, vocab errors."""
import gzip
import importlib.util
from pathlib import Path

import pytest
import torch

from finecliper.clip import tokenizer as tk
from finecliper.clip.tokenizer import ClipTokenizer, TokenizerError, default_bpe_path, load_tokenizer
from finecliper.io import sha256_file

SENTENCES = [
    "a photo of a happy face",
    "A  photo\tof a SAD face!!!",
    "The person's eyebrows are raised; mouth open (surprise?) -- 100% sure, isn't it?",
    "café naïve façade, Straße, ΣΑΣ, İstanbul, ﬁne",
    "日本語のテキスト 😀👍 emoji",
    "Tom &amp; Jerry &lt;3 &quot;quoted&quot;",
    "mojibake: cafÃ© Ã©tÃ©",
    "",
]
LONG = " ".join(["the corners of the mouth are pulled down and the brows knit together"] * 30)


@pytest.fixture(scope="module")
def openai_simple_tokenizer():
    """open_clip's copy of OpenAI's SimpleTokenizer, loaded by file path (open_clip itself needs torchvision).

    open-clip-torch is a test-only reference (installed --no-deps, requirements/test-references.txt)."""
    spec = importlib.util.find_spec("open_clip")  # the package folder, without running its __init__
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("open-clip-torch (test-only reference: pip install --no-deps open-clip-torch==3.3.0) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer.py"
    spec = importlib.util.spec_from_file_location("_open_clip_tokenizer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.SimpleTokenizer()


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.mark.parametrize("context", [77, 248])
def test_ids_equal_openai_simple_tokenizer(tok, openai_simple_tokenizer, context):
    texts = SENTENCES + [LONG]
    ours = tok(texts, context_length=context)
    ref = openai_simple_tokenizer(texts, context_length=context)
    assert ours.dtype == torch.long and ours.shape == (len(texts), context)
    assert torch.equal(ours, ref)
    for t in SENTENCES:
        assert tok.encode(t) == openai_simple_tokenizer.encode(t)


def test_known_sequence_and_zero_padding(tok):
    out = tok("a photo of a happy face")
    assert out.shape == (1, 77)
    assert out[0, :8].tolist() == [49406, 320, 1125, 539, 320, 900, 1710, 49407]
    assert out[0, 8:].eq(0).all()
    empty = tok([""])
    assert empty[0, :2].tolist() == [49406, 49407] and empty[0, 2:].eq(0).all()


@pytest.mark.parametrize("context", [77, 248])
def test_truncation_keeps_eot_last(tok, context):
    out = tok([LONG, "short"], context_length=context)
    n_ids = len(tok.encode(LONG)) + 2
    assert n_ids > 248  # really truncated at both lengths
    assert out[0, 0] == 49406 and out[0, -1] == 49407
    assert out[0].ne(0).all() and (out[0] == 49407).sum() == 1
    assert out[0, 1:-1].tolist() == tok.encode(LONG)[: context - 2]
    assert out[0].argmax() == context - 1  # EOT is the largest id: OpenAI's pooling position
    with pytest.raises(ValueError, match="more than the context length"):
        tok([LONG], context_length=context, truncate=False)


def test_literal_special_token_text_follows_openai(tok):
    # OpenAI's SimpleTokenizer maps the literal string to the special id (open_clip's copy renamed its specials)
    assert tok.encode("a <|endoftext|> b") == [320, 49407, 321]


def test_hf_directory_tokenizer_gives_same_ids(tok, tmp_path):
    tok.hf.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    again = load_tokenizer(tmp_path, context_length=248)
    assert again.context_length == 248
    assert torch.equal(again(SENTENCES + [LONG]), tok(SENTENCES + [LONG], context_length=248))


def test_missing_vocabulary_errors_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(TokenizerError, match="not found: .*nope.txt.gz"):
        ClipTokenizer.from_bpe(tmp_path / "nope.txt.gz")
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(TokenizerError, match="bad.txt.gz: not a readable gzip"):
        ClipTokenizer.from_bpe(bad)
    short = tmp_path / "short.txt.gz"
    with gzip.open(short, "wt") as f:
        f.write("#version\na b\n")
    with pytest.raises(TokenizerError, match="short.txt.gz: expected 48894 BPE merges"):
        ClipTokenizer.from_bpe(short)
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)
    # a vocabulary file that is not the one finecliper shipped is refused
    monkeypatch.setattr(tk, "BPE_SHA256", "0" * 64)
    with pytest.raises(TokenizerError, match="not the CLIP vocabulary finecliper shipped"):
        load_tokenizer()


def test_the_bpe_vocabulary_ships_inside_finecliper_with_its_notice():
    p = default_bpe_path()
    assert p.name == "bpe_simple_vocab_16e6.txt.gz" and p.is_relative_to(Path(tk.__file__).parent) and p.is_file()
    assert sha256_file(p) == tk.BPE_SHA256
    notice = (p.parent / "NOTICE").read_text()
    assert "OpenAI" in notice and "MIT" in notice and tk.BPE_SHA256 in notice
    assert "Copyright (c) 2021 OpenAI" in (p.parent / "LICENSE").read_text()


