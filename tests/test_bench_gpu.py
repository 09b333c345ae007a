"""benchmarks/gpu.py: its --tiny CPU run exercises every section and writes the JSON the GPU run writes."""
import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu.py"
VARIANTS = ("base", "star", "dagger", "star_dagger")


def load_script():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_tiny_run_measures_every_variant_and_setting(tiny_run):
    res, _ = tiny_run
    assert res["meta"]["tiny"] is True and res["meta"]["torch"]
    assert res["peak"]["bf16_tflops"] > 0 and res["peak"]["fp32_tflops"] > 0
    for v in VARIANTS:
        rows = res["steps"][v]
        assert {(r["batch"], r["grad_checkpoint"]) for r in rows} == {(b, c) for b in (1, 2) for c in (False, True)}
        for r in rows:
            assert r["seconds"] > 0 and r["clips_per_s"] == pytest.approx(r["batch"] / r["seconds"], rel=0.02)
            assert r["flop"] > 0 and 0 < r["mfu"]
    # more modalities cost more FLOPs at the same batch
    flops = {v: next(r["flop"] for r in res["steps"][v] if r["batch"] == 2 and not r["grad_checkpoint"]) for v in VARIANTS}
    assert flops["base"] < flops["dagger"] < flops["star_dagger"] and flops["base"] < flops["star"]


def test_tiny_run_trains_compiles_generates_and_projects(tiny_run):
    res, stdout = tiny_run
    train = res["train"]
    assert train["loss_finite"] and train["weights_finite"] and train["decreasing"]
    assert len(train["losses"]) == train["steps"] and train["loss_last"] < train["loss_first"]
    comp = res["compile"]
    assert "failed" not in comp, comp
    assert comp["compiled_s"] > 0 and comp["speedup"] > 0 and comp["graph_breaks"] >= 0
    llava = res["video_llava"]
    assert set(llava["batches"]) == {"1", "2"} and all(b["clips_per_s"] > 0 for b in llava["batches"].values())
    assert llava["parameters"] > 0
    for v in VARIANTS:
        p = res["projection"][v]
        assert p["fold_epoch_min"] > 0 and p["recipe_h"] == pytest.approx(30 * p["fold_epoch_min"] / 60, rel=0.02)
    assert res["fits_24gb"] == {"skipped": "needs CUDA (the cap is the CUDA allocator's)"}
    assert set(res["goals"]) == {"base_mfu_ge_45pct_at_batch_ge_32", "every_variant_fits_24gb_at_16",
                                 "video_llava_clips_per_s_at_32"}
    assert "[projection]" in stdout and "[video_llava]" in stdout


def test_largest_batch_follows_the_memory_line():
    mod = load_script()
    rows = [{"batch": 8, "peak_memory_gib": 6.0}, {"batch": 16, "peak_memory_gib": 10.0},
            {"batch": 32, "peak_memory_gib": 18.0}]
    # 0.5 GiB per clip from 8 -> 32: 24 GiB is reached at 8 + (24 - 6) / 0.5 = 44
    assert mod.largest_batch_predicted(rows, 24.0) == 44
    assert mod.largest_batch_predicted(rows[:1], 24.0) is None
    assert mod.largest_batch_predicted([{"batch": 8, "oom": True}, *rows[:2]], 24.0) == 44


def test_recommended_batch_prefers_no_checkpointing_within_the_card():
    mod = load_script()
    rows = [{"batch": b, "grad_checkpoint": c, "seconds": 1.0} for b in (8, 16, 32, 48) for c in (False, True)]
    fits = {"base/ckpt_off": {"largest_verified": 20}, "base/ckpt_on": {"largest_verified": 60}}
    assert mod.recommended_batch(rows, fits, "base") == (16, False)
    fits = {"base/ckpt_off": {"largest_verified": 4}, "base/ckpt_on": {"largest_verified": 60}}
    assert mod.recommended_batch(rows, fits, "base") == (48, True)
    assert mod.recommended_batch(rows, {}, "base") == (48, False)  # CPU: no cap measured


def test_full_shapes_are_the_papers():
    mod = load_script()
    full = mod.Shapes.full()
    assert full.frames == 16 and full.image == 224 and full.batches == (8, 16, 32, 48)
    assert full.llava["text"]["hidden_size"] == 4096 and full.llava["text"]["num_hidden_layers"] == 32
    assert full.llava_frames == 8 and full.llava_batches == (1, 8, 32) and full.new_tokens == 64
