"""FaceXFormer on transformers' Swin: the released (torchvision Swin) key layout loads strictly, the converted
backbone computes torchvision's Swin, and the analyser maps crops back to frame pixels."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from finecliper.face.facexformer import (
    FaceXFormer, FaceXFormerAnalyser, FaceXFormerAnalyserConfig, FaceXFormerConfig, enlarge_box,
    labels_to_map, landmarks_to_frame, load_facexformer)
from finecliper.face.facexformer_convert import convert_released_state_dict, relative_position_index

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Small enough for seconds on 2 cores, but the released geometry: 224 input, patch 4, window 7
# (56/28/14/7 grids: shifted windows in stages 1-3, none in stage 4, as in Swin-B).
TINY = FaceXFormerConfig(embed_dim=8, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], decoder_dim=32,
                         decoder_depth=2, decoder_heads=2, decoder_mlp_dim=64)


# ------------------------------------------------------------------------ the released layout, written from
# upstream's code: backbone = Sequential(*swin_b().children()[:-1]) → "backbone.0.*" (features), "backbone.1.*"
# (final norm); then FaceXFormer's own modules.
def released_layout(cfg: FaceXFormerConfig) -> dict[str, tuple[int, ...]]:
    c, w, d = cfg.embed_dim, cfg.window_size, cfg.decoder_dim
    s = {"backbone.0.0.0.weight": (c, 3, cfg.patch_size, cfg.patch_size), "backbone.0.0.0.bias": (c,),
         "backbone.0.0.2.weight": (c,), "backbone.0.0.2.bias": (c,)}
    for st, (depth, heads) in enumerate(zip(cfg.depths, cfg.num_heads)):
        dim = c * 2 ** st
        for j in range(depth):
            p = f"backbone.0.{2 * st + 1}.{j}."
            s.update({p + "norm1.weight": (dim,), p + "norm1.bias": (dim,),
                      p + "attn.qkv.weight": (3 * dim, dim), p + "attn.qkv.bias": (3 * dim,),
                      p + "attn.proj.weight": (dim, dim), p + "attn.proj.bias": (dim,),
                      p + "attn.relative_position_bias_table": ((2 * w - 1) ** 2, heads),
                      p + "attn.relative_position_index": (w ** 4,),
                      p + "norm2.weight": (dim,), p + "norm2.bias": (dim,),
                      p + "mlp.0.weight": (4 * dim, dim), p + "mlp.0.bias": (4 * dim,),
                      p + "mlp.3.weight": (dim, 4 * dim), p + "mlp.3.bias": (dim,)})
        if st < 3:
            p = f"backbone.0.{2 * st + 2}."
            s.update({p + "reduction.weight": (2 * dim, 4 * dim), p + "norm.weight": (4 * dim,),
                      p + "norm.bias": (4 * dim,)})
    s.update({"backbone.1.weight": (8 * c,), "backbone.1.bias": (8 * c,),
              "pe_layer.positional_encoding_gaussian_matrix": (2, d // 2), "linear_fuse.weight": (d, 4 * d, 1, 1)})
    for i in range(4):
        s.update({f"linear_c.{i}.proj.weight": (d, c * 2 ** i), f"linear_c.{i}.proj.bias": (d,)})
    fd = "face_decoder."
    for t in ("landmarks", "pose", "attribute", "visibility", "age", "gender", "race"):
        s[f"{fd}{t}_token.weight"] = (1, d)
    s[fd + "mask_tokens.weight"] = (11, d)
    s.update({fd + "output_upscaling.0.weight": (d, d // 4, 2, 2), fd + "output_upscaling.0.bias": (d // 4,),
              fd + "output_upscaling.1.weight": (d // 4,), fd + "output_upscaling.1.bias": (d // 4,),
              fd + "output_upscaling.3.weight": (d // 4, d // 8, 2, 2), fd + "output_upscaling.3.bias": (d // 8,)})
    heads_out = {"output_hypernetwork_mlps": d // 8, "landmarks_prediction_head": 136, "pose_prediction_head": 3,
                 "attribute_prediction_head": 40, "visibility_prediction_head": 29, "age_prediction_head": 8,
                 "gender_prediction_head": 2, "race_prediction_head": 5}
    for name, n_out in heads_out.items():
        for i, (a, b) in enumerate([(d, d), (d, d), (d, n_out)]):
            s.update({f"{fd}{name}.layers.{i}.weight": (b, a), f"{fd}{name}.layers.{i}.bias": (b,)})

    def attn(p, down):
        inner = d // down
        return {p + "q_proj.weight": (inner, d), p + "q_proj.bias": (inner,), p + "k_proj.weight": (inner, d),
                p + "k_proj.bias": (inner,), p + "v_proj.weight": (inner, d), p + "v_proj.bias": (inner,),
                p + "out_proj.weight": (d, inner), p + "out_proj.bias": (d,)}

    tr = fd + "transformer."
    for i in range(cfg.decoder_depth):
        p = f"{tr}layers.{i}."
        s.update(attn(p + "self_attn.", 1) | attn(p + "cross_attn_token_to_image.", 2)
                 | attn(p + "cross_attn_image_to_token.", 2))
        s.update({p + "mlp.lin1.weight": (cfg.decoder_mlp_dim, d), p + "mlp.lin1.bias": (cfg.decoder_mlp_dim,),
                  p + "mlp.lin2.weight": (d, cfg.decoder_mlp_dim), p + "mlp.lin2.bias": (d,)})
        for n in range(1, 5):
            s.update({f"{p}norm{n}.weight": (d,), f"{p}norm{n}.bias": (d,)})
    s.update(attn(tr + "final_attn_token_to_image.", 2))
    s.update({tr + "norm_final_attn.weight": (d,), tr + "norm_final_attn.bias": (d,)})
    return s


def random_released(cfg: FaceXFormerConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in released_layout(cfg).items():
        if k.endswith("relative_position_index"):
            sd[k] = relative_position_index(cfg.window_size)
        else:
            sd[k] = torch.randn(shape, generator=g) / math.sqrt(shape[-1] if len(shape) > 1 else 8)
    return sd


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("fxf") / "model.pt"
    torch.save({"state_dict_backbone": random_released(TINY)}, path)
    return path


# ------------------------------------------------------------------------ torchvision Swin, from its equations
def tv_window_attention(x, sd, p, heads, window, shift):
    """torchvision ``shifted_window_attention`` on (B, H, W, C) with the released keys under ``p``."""
    b, h, w, c = x.shape
    if window >= h:
        shift = 0
    if shift:
        x = torch.roll(x, (-shift, -shift), (1, 2))
    nw = (h // window) * (w // window)
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5).reshape(b * nw, window ** 2, c)
    qkv = F.linear(x, sd[p + "qkv.weight"], sd[p + "qkv.bias"])
    q, k, v = qkv.reshape(x.size(0), x.size(1), 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
    n = window ** 2
    bias = sd[p + "relative_position_bias_table"][sd[p + "relative_position_index"]].view(n, n, -1).permute(2, 0, 1)
    attn = attn + bias[None]
    if shift:
        mask = x.new_zeros(h, w)
        cnt = 0
        for hs in ((0, -window), (-window, -shift), (-shift, None)):
            for ws in ((0, -window), (-window, -shift), (-shift, None)):
                mask[hs[0]:hs[1], ws[0]:ws[1]] = cnt
                cnt += 1
        mask = mask.view(h // window, window, w // window, window).permute(0, 2, 1, 3).reshape(nw, n)
        mask = mask[:, None] - mask[:, :, None]
        mask = mask.masked_fill(mask != 0, -100.0)
        attn = (attn.view(b, nw, heads, n, n) + mask[None, :, None]).view(-1, heads, n, n)
    x = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b * nw, n, c)
    x = F.linear(x, sd[p + "proj.weight"], sd[p + "proj.bias"])
    x = x.view(b, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
    return torch.roll(x, (shift, shift), (1, 2)) if shift else x


def tv_swin_stages(img, sd, cfg):
    """Outputs of torchvision ``features.1/3/5/7`` (upstream's hooks), each (B, C, h, w)."""
    ln = lambda x, p: F.layer_norm(x, x.shape[-1:], sd[p + "weight"], sd[p + "bias"], 1e-5)  # noqa: E731
    x = F.conv2d(img, sd["backbone.0.0.0.weight"], sd["backbone.0.0.0.bias"], stride=cfg.patch_size)
    x = ln(x.permute(0, 2, 3, 1), "backbone.0.0.2.")  # (B, H, W, C)
    outs = []
    for st, (depth, heads) in enumerate(zip(cfg.depths, cfg.num_heads)):
        for j in range(depth):
            p = f"backbone.0.{2 * st + 1}.{j}."
            shift = 0 if j % 2 == 0 else cfg.window_size // 2
            x = x + tv_window_attention(ln(x, p + "norm1."), sd, p + "attn.", heads, cfg.window_size, shift)
            y = F.gelu(F.linear(ln(x, p + "norm2."), sd[p + "mlp.0.weight"], sd[p + "mlp.0.bias"]))
            x = x + F.linear(y, sd[p + "mlp.3.weight"], sd[p + "mlp.3.bias"])
        outs.append(x.permute(0, 3, 1, 2))
        if st < 3:
            p = f"backbone.0.{2 * st + 2}."
            x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
            x = F.linear(ln(x, p + "norm."), sd[p + "reduction.weight"])
    return outs


# ------------------------------------------------------------------------ tests
def test_released_checkpoint_loads_strictly_and_backbone_equals_torchvision_swin(tiny_ckpt):
    model = load_facexformer(tiny_ckpt, cfg=TINY)
    sd = torch.load(tiny_ckpt, weights_only=True)["state_dict_backbone"]
    img = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, ref = model.stage_features(img), tv_swin_stages(img, sd, TINY)
    assert [tuple(o.shape) for o in ours] == [(2, 8, 56, 56), (2, 16, 28, 28), (2, 32, 14, 14), (2, 64, 7, 7)]
    for o, r in zip(ours, ref):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, atol=1e-4, rtol=1e-4)
    # the q/k/v split is in (q, k, v) order, bit for bit
    qkv = sd["backbone.0.3.1.attn.qkv.weight"]
    att = model.backbone.encoder.layers[1].blocks[1].attention
    assert torch.equal(torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight]), qkv)
    # the head keeps upstream's names: a head tensor arrives unchanged
    assert torch.equal(model.face_decoder.mask_tokens.weight, sd["face_decoder.mask_tokens.weight"])


def test_forward_shapes_and_parsing_is_hypernetwork_dot_product(tiny_ckpt):
    model = load_facexformer(tiny_ckpt, cfg=TINY)
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    feats = {}
    model.face_decoder.output_upscaling.register_forward_hook(lambda m, i, o: feats.__setitem__("up", o))
    model.face_decoder.output_hypernetwork_mlps.register_forward_hook(lambda m, i, o: feats.__setitem__("hyper", o))
    with torch.no_grad():
        out = model(x)
    assert out["landmarks"].shape == (3, 68, 2) and out["parsing"].shape == (3, 11, 224, 224)
    assert {k: tuple(v.shape[1:]) for k, v in out.items() if k not in ("landmarks", "parsing")} == {
        "pose": (3,), "attribute": (40,), "visibility": (29,), "age": (8,), "gender": (2,), "race": (5,)}
    up, hyper = feats["up"], feats["hyper"]  # (3, 4, 224, 224), (3, 11, 4)
    assert up.shape == (3, 4, 224, 224) and hyper.shape == (3, 11, 4)
    torch.testing.assert_close(out["parsing"][1, 7, 100, 31], (hyper[1, 7] * up[1, :, 100, 31]).sum())
    # frames are independent: batch of 3 == one at a time
    with torch.no_grad():
        one = model(x[2:3])
    torch.testing.assert_close(one["landmarks"][0], out["landmarks"][2], atol=1e-5, rtol=1e-5)


def test_random_fourier_positional_encoding_by_hand(tiny_ckpt):
    model = load_facexformer(tiny_ckpt, cfg=TINY)
    g = model.pe_layer.positional_encoding_gaussian_matrix  # (2, 16)
    pe = model.pe_layer(56, 56)                            # (32, 56, 56)
    assert pe.shape == (32, 56, 56)
    y, x = 3, 40
    coords = torch.tensor([2 * (x + 0.5) / 56 - 1, 2 * (y + 0.5) / 56 - 1])
    ang = 2 * math.pi * (coords @ g)
    torch.testing.assert_close(pe[:, y, x], torch.cat([ang.sin(), ang.cos()]))


def test_swin_b_layout_on_meta_device():
    cfg = FaceXFormerConfig()
    layout = released_layout(cfg)
    released = {k: torch.empty(s, device="meta", dtype=torch.long if "index" in k else torch.float32)
                for k, s in layout.items()}
    converted = convert_released_state_dict(released)
    with torch.device("meta"):
        model = FaceXFormer(cfg)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == want
    # torchvision swin_b: 87,768,224 parameters, of which the 1000-class head has 1024*1000+1000
    assert sum(p.numel() for p in model.backbone.parameters()) == 87_768_224 - 1_025_000
    # 24 blocks: each qkv became q, k, v; the 24 index buffers were dropped
    assert len(converted) - len(layout) == (4 - 1) * 24


def test_bad_checkpoints_give_clear_errors(tmp_path, tiny_ckpt):
    sd = random_released(TINY)
    missing = dict(sd)
    del missing["face_decoder.mask_tokens.weight"]
    p = tmp_path / "missing.pt"
    torch.save({"state_dict_backbone": missing}, p)
    with pytest.raises(ValueError, match=r"missing\.pt.*missing keys \(1\): face_decoder\.mask_tokens\.weight"):
        load_facexformer(p, cfg=TINY)
    extra = dict(sd, **{"face_decoder.extra.weight": torch.zeros(1)})
    p = tmp_path / "extra.pt"
    torch.save({"state_dict_backbone": extra}, p)
    with pytest.raises(ValueError, match=r"extra\.pt.*unexpected keys \(1\): face_decoder\.extra\.weight"):
        load_facexformer(p, cfg=TINY)
    with pytest.raises(ValueError, match=r"model\.pt.*wrong shapes \(\d+\): backbone\.embeddings"):
        load_facexformer(tiny_ckpt, cfg=FaceXFormerConfig(embed_dim=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4],
                                                          decoder_dim=32, decoder_heads=2, decoder_mlp_dim=64))
    bad_index = dict(sd)
    bad_index["backbone.0.1.0.attn.relative_position_index"] = torch.zeros(7 ** 4, dtype=torch.long)
    p = tmp_path / "index.pt"
    torch.save(bad_index, p)  # a bare state dict is accepted too; this one has a wrong index buffer
    with pytest.raises(ValueError, match=r"backbone\.0\.1\.0\.attn\.relative_position_index: .*not the standard"):
        load_facexformer(p, cfg=TINY)
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict_backbone": sd, "args": _Args()}, pickled)  # pickles a Python object
    with pytest.raises(ValueError, match=r"pickled\.pt: .*weights_only=True.*allow_pickle=True"):
        load_facexformer(pickled, cfg=TINY)
    assert load_facexformer(pickled, allow_pickle=True, cfg=TINY) is not None
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_facexformer(tmp_path / "nowhere.pt", cfg=TINY)
    p = tmp_path / "other.pt"
    torch.save({"model": 3}, p)
    with pytest.raises(ValueError, match=r"other\.pt: expected a dict with key 'state_dict_backbone'.*model"):
        load_facexformer(p, cfg=TINY)


class _Args:
    lr = 1e-4


def test_crop_geometry_by_hand():
    # upstream adjust_bbox: +25 % per side, clipped, truncated
    crop = enlarge_box(np.array([100.0, 50.0, 180.0, 150.0]), (200, 300))
    assert crop.tolist() == [80, 25, 200, 175]
    assert enlarge_box(np.array([-10.0, -5.0, 40.0, 45.0]), (100, 100)).tolist() == [0, 0, 52, 57]
    # model corners (-1, -1), (1, 1) are the crop's outer pixel edges; the crop centre maps to its centre
    lm = np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    got = landmarks_to_frame(lm, crop, 224)
    np.testing.assert_allclose(got, [[79.5, 24.5], [199.5, 174.5], [139.5, 99.5]], atol=1e-4)
    # labels: a crop all "skin" fills exactly the crop rectangle of the frame-sized map
    labels = np.ones((224, 224), np.uint8)
    m = labels_to_map(labels, crop, (200, 300), (200, 300))
    ys, xs = np.nonzero(m)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (80, 199, 25, 174) and m.sum() == 120 * 150
    # half size map: the same rectangle halved; image-left half of the crop labelled 2 stays image-left
    labels[:, :112] = 2
    m = labels_to_map(labels, np.array([80, 24, 200, 176]), (200, 300), (100, 150))
    assert (m == 2).sum() == 30 * 76 and (m == 1).sum() == 30 * 76
    assert np.nonzero(m == 2)[1].max() < np.nonzero(m == 1)[1].min() == 70


def test_analyser_on_astronaut(tiny_ckpt):
    an = FaceXFormerAnalyser(tiny_ckpt, device="cpu", batch_size=2, cfg=FaceXFormerAnalyserConfig(model=TINY))
    head = an.model.face_decoder.landmarks_prediction_head.layers[-1]
    with torch.no_grad():  # constant landmarks: the crop's corners, then its centre
        head.weight.zero_()
        head.bias.copy_(torch.tensor([[-1.0, -1.0], [1.0, 1.0]] + [[0.0, 0.0]] * 66).flatten())
    img = data.astronaut()  # (512, 512, 3)
    blank = np.zeros_like(img)
    frames = np.stack([img, blank, img])
    tr = an.analyse(frames, video=True)
    assert tr.valid.tolist() == [True, False, True] and tr.reason_names() == ["ok", "no face", "ok"]
    assert tr.landmarks68.shape == (3, 68, 2) and tr.parsing.shape == (3, 224, 224) and tr.parsing.dtype == np.uint8
    box = an.detector(img)[0].box
    np.testing.assert_allclose(tr.boxes[0], box)
    assert tr.confidence[0] > 0.8
    crop = enlarge_box(box, (512, 512))
    np.testing.assert_allclose(tr.landmarks68[0, 0], crop[:2] - 0.5, atol=1e-3)
    np.testing.assert_allclose(tr.landmarks68[0, 1], crop[2:] - 0.5, atol=1e-3)
    np.testing.assert_allclose(tr.landmarks68[2], tr.landmarks68[0])
    # the face (about x 178-273, y 83-178) sits inside the crop; labels only there (map 224 = frame / 512*224)
    assert crop[0] < 178 and crop[2] > 273 and crop[1] < 83 and crop[3] > 178
    s = 224 / 512  # the crop's edges x0-0.5 … x1-0.5 fall at x0·s-0.5 … x1·s-0.5 on the map
    inside = np.zeros((224, 224), bool)
    inside[math.floor(crop[1] * s):math.ceil(crop[3] * s), math.floor(crop[0] * s):math.ceil(crop[2] * s)] = True
    assert (tr.parsing[0][~inside] == 0).all() and (tr.parsing[0][inside] > 0).mean() > 0.3
    assert (tr.parsing[1] == 0).all()
    d = an.describe()
    assert d["backend"] == "facexformer" and len(d["checkpoint_sha256"]) == 64 and d["params"]["margin"] == 0.5
    an.close()


def test_extract_cli_runs_the_facexformer_backend(tiny_ckpt, tmp_path):
    """`finecliper extract --backend facexformer --checkpoint ...` writes a cache that records the backend."""
    import json

    from PIL import Image

    from finecliper.cli.main import main
    from finecliper.face.cache import load_face_cache

    clip = tmp_path / "clips" / "00001"
    clip.mkdir(parents=True)
    face = Image.fromarray(data.astronaut()).resize((224, 224))
    for t in range(3):
        face.save(clip / f"{t + 1:05d}.png")
    tiny = [f"facexformer.analyser.model.{k}={v}" for k, v in
            dict(embed_dim=8, depths="[2,2,2,2]", num_heads="[1,2,2,4]", decoder_dim=32, decoder_heads=2,
                 decoder_mlp_dim=64).items()]
    out = tmp_path / "cache"
    assert main(["extract", "--clips", str(tmp_path / "clips"), "--out", str(out), "--backend", "facexformer",
                 "--checkpoint", str(tiny_ckpt), *tiny]) == 0
    track = load_face_cache(out / "00001.npz")
    assert track.landmarks68.shape == (3, 68, 2) and track.valid.all()
    manifest = json.loads((out / "cache_manifest.json").read_text())
    assert "facexformer" in json.dumps(manifest).lower()
    # the same folder with the facemesh backend is another extractor: refused, not silently mixed
    assert main(["extract", "--clips", str(tmp_path / "clips"), "--out", str(out)]) != 0
