"""No run is lost and nothing is wasted, met through the CLI as a user meets it.

Refusing to overwrite a run, a kill between the two renames of the checkpoint swap, damaged trainer
state, a full disk, inputs checked before epoch 1 (missing or leaking descriptions, truncated files,
clips that `prepare` found broken, unreadable face-cache files), backbone identity on resume and
evaluation, and gradient accumulation end to end.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from finecliper.cli.main import main
from finecliper.clip.testing import save_tiny_clip
from finecliper.model.shapes import clip_config, random_clip
from finecliper.text.desc_cache import IDENTITY_KEYS, DescriptionCache

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import make_dfew_clips, make_dfew_like  # noqa: E402

TINY = ["data.image_size=32", "model.num_frames=4", "data.batch_size=8", "data.workers=0", "train.optimizer=adamw",
        "train.lr=0.01", "train.weight_decay=0.01", "train.warmup_epochs=0.5", "train.threads=2", "train.log_every=0"]


def describe(path: Path, clip_ids, leaks=False, skip=()):
    cache = DescriptionCache(path, {k: "test" for k in IDENTITY_KEYS} | {"leaks_label": leaks})
    for cid in clip_ids:
        if cid not in skip:
            cache.append(cid, f"clip {cid}: the brows rise", "raw", [])
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    ann, data = make_dfew_like(root, n_train_per_class=2, n_test_per_class=1)  # 14 train, 7 test clips
    small = dict(vision_width=64, vision_layers=2, text_width=64, text_layers=2, image_size=32, embed_dim=32)
    clip = save_tiny_clip(random_clip(clip_config(**small)), root / "clip.pt", "openai")
    longclip = save_tiny_clip(random_clip(clip_config(**small), seed=3), root / "longclip.pt", "longclip")
    other_long = save_tiny_clip(random_clip(clip_config(**small), seed=4), root / "other-longclip.pt", "longclip")
    ids = [f"{i:05d}" for i in range(1, 22)]
    caches = {"good": describe(root / "good.jsonl", ids), "leaky": describe(root / "leaky.jsonl", ids, leaks=True),
              "gap": describe(root / "gap.jsonl", ids, skip={"00005"})}
    return {"root": root, "ann": ann, "data": data, "clip": clip, "longclip": longclip, "other_long": other_long,
            **caches}


def args(s, out, epochs=1, *more, variant="base", longclip=None):
    a = [f"model.clip={s['clip']}", f"data.annotations={s['ann']}", f"data.root={s['data']}", f"out={out}",
         f"train.epochs={epochs}", f"model.variant={variant}", *TINY, *more]
    if variant in ("dagger", "star_dagger"):
        a += [f"model.longclip={longclip or s['longclip']}"]
    return a


def history(fold: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (fold / "history.jsonl").read_text().splitlines()]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------- the run folder

def test_rerun_without_resume_refuses_and_leaves_best_untouched(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *args(setup, out, 1)]) == 0
    best = files(out / "fold_1" / "best")
    capsys.readouterr()
    assert main(["train", *args(setup, out, 1)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {out / 'fold_1'} already holds a run (last/, best/); pass --resume to continue it "
                   f"or --overwrite to replace it\n")
    assert files(out / "fold_1" / "best") == best and history(out / "fold_1") == [1]
    assert main(["train", "--overwrite", *args(setup, out, 1)]) == 0  # replaced, not appended to
    err = capsys.readouterr().err
    assert "--overwrite: removed the earlier run" in err and "fold 1: training from scratch" in err
    assert history(out / "fold_1") == [1]


KILLER = textwrap.dedent("""
    # Run `finecliper train`, SIGKILL-ing itself right after the first rename of a last/ swap
    # (last/ -> previous/), i.e. between the two renames, in epoch N (argv[1]).
    import os, signal, sys
    real_replace, swaps = os.replace, []

    def replace(src, dst, *a, **kw):
        real_replace(src, dst, *a, **kw)
        if os.path.basename(src) == "last" and os.path.basename(dst) == "previous":
            swaps.append(src)
            if len(swaps) == int(sys.argv[1]) - 1:  # epoch 1 has no last/ to move yet
                os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    from finecliper.cli.main import main
    sys.exit(main(sys.argv[2:]))
""")


def test_kill_between_the_two_renames_then_resume_continues_from_the_last_complete_epoch(setup, tmp_path, capsys):
    out, fold = tmp_path / "run", tmp_path / "run" / "fold_1"
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    r = subprocess.run([sys.executable, str(killer), "3", "train", *args(setup, out, 4)], capture_output=True,
                       text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    (fold / ".curves.png.ab12cd34.tmp").write_bytes(b"half")  # as a kill inside a report write leaves
    assert not (fold / "last").exists() and (fold / "previous" / "state.pt").is_file()  # caught between the renames
    assert history(fold) == [1, 2]  # epoch 3 was not safe, so it is not history
    assert main(["train", "--resume", *args(setup, out, 4)]) == 0
    err = capsys.readouterr().err
    assert "restored last from previous (a save was interrupted)" in err
    assert "fold 1: resuming after epoch 2 of 4" in err
    assert history(fold) == [1, 2, 3, 4]  # each epoch exactly once
    assert not [p.name for p in fold.iterdir() if p.name.startswith(".")]  # no stale temp folders or files


def test_resume_is_bit_identical_to_a_straight_run(setup, tmp_path, capsys):
    from safetensors.torch import load_file

    assert main(["train", *args(setup, tmp_path / "straight", 3)]) == 0
    out = tmp_path / "stopped"
    assert main(["train", *args(setup, out, 3, "train.stop_after=1")]) == 0
    assert main(["train", "--resume", *args(setup, out, 3, "train.stop_after=1")]) == 0
    assert main(["train", "--resume", *args(setup, out, 3)]) == 0
    assert "resuming after epoch 2 of 3" in capsys.readouterr().err
    a = load_file(str(tmp_path / "straight" / "fold_1" / "last" / "model.safetensors"))
    b = load_file(str(out / "fold_1" / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert history(out / "fold_1") == [1, 2, 3]


def test_damaged_trainer_state_without_an_earlier_checkpoint_is_one_line(setup, tmp_path, capsys):
    out, fold = tmp_path / "run", tmp_path / "run" / "fold_1"
    assert main(["train", *args(setup, out, 2, "train.stop_after=1")]) == 0
    state = fold / "last" / "state.pt"
    state.write_bytes(state.read_bytes()[:500])
    capsys.readouterr()
    assert main(["train", "--resume", *args(setup, out, 2)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {state}: damaged trainer state") and "--overwrite" in err and err.count("\n") == 1


def test_damaged_trainer_state_falls_back_to_the_previous_checkpoint(setup, tmp_path, capsys):
    out, fold = tmp_path / "run", tmp_path / "run" / "fold_1"
    assert main(["train", *args(setup, out, 3, "train.stop_after=2")]) == 0
    state = fold / "last" / "state.pt"
    state.write_bytes(b"not a torch file")
    capsys.readouterr()
    assert main(["train", "--resume", *args(setup, out, 3)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {state}: damaged trainer state" in err and f"falling back to {fold / 'previous'}" in err
    assert "resuming after epoch 1 of 3" in err
    assert history(fold) == [1, 2, 3] and (fold / "last.damaged" / "state.pt").read_bytes() == b"not a torch file"


def test_a_full_disk_is_one_error_line_and_leaves_no_temp_folder(setup, tmp_path, capsys, monkeypatch):
    real = Path.write_bytes

    def full(self, data):
        if self.name == "model.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device")  # as a real write: no file name
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    out = tmp_path / "run"
    assert main(["train", *args(setup, out, 1)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (f"error: {out / 'fold_1' / 'best'}: no space left on the device; "
                                    f"free some space or write elsewhere (out=DIR)")
    assert sorted(p.name for p in (out / "fold_1").iterdir()) == ["predictions_last.json", "train.log"]


# ----------------------------------------------------------------------------- inputs checked before epoch 1

def test_a_missing_description_is_reported_before_epoch_1(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *args(setup, out, 1, f"descriptions={setup['gap']}", variant="dagger")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 clip problem(s) found before training: 00005: no description in ")
    assert "(train)" in err and "`finecliper describe`" in err and err.count("\n") == 1
    assert not (out / "fold_1" / "history.jsonl").exists() and not (out / "fold_1" / "last").exists()


def test_leaking_descriptions_are_refused_unless_allowed_and_recorded(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *args(setup, out, 1, f"descriptions={setup['leaky']}", variant="dagger")]) == 2
    err = capsys.readouterr().err
    assert "leaks_label: true" in err and "allow_leaking_descriptions=true" in err and err.count("\n") == 1
    assert main(["train", *args(setup, out, 1, f"descriptions={setup['leaky']}", "allow_leaking_descriptions=true",
                                variant="dagger")]) == 0
    rec = json.loads((out / "fold_1" / "summary.json").read_text())["descriptions"]
    assert rec["leaks_label"] is True and rec["backend"] == "test" and len(rec["sha256"]) == 64
    assert rec["path"] == str(setup["leaky"])


def test_a_truncated_description_file_is_one_line(setup, tmp_path, capsys):
    cut = tmp_path / "cut.jsonl"
    data = Path(setup["good"]).read_bytes()
    cut.write_bytes(data[:-20])  # an interrupted write: the last clip's line is half there
    assert main(["train", *args(setup, tmp_path / "run", 1, f"descriptions={cut}", variant="dagger")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "00021: no description" in err and "truncated last line" in err
    cut.write_bytes(data[:60])  # cut inside the header
    assert main(["train", *args(setup, tmp_path / "run", 1, f"descriptions={cut}", variant="dagger")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {cut}") and err.count("\n") == 1


def test_clips_that_prepare_found_broken_stop_the_run_before_epoch_1(setup, tmp_path, capsys):
    ann, data = make_dfew_clips(tmp_path / "ds", 7, 7)
    broken = data / "Clip" / "clip_224x224" / "00003"
    for f in broken.iterdir():
        f.unlink()
    assert main(["prepare", "--dataset", "dfew", "--annotations", str(ann), "--data-root", str(data),
                 "--variant", "clip_224x224", "--fold", "1", "--out", str(tmp_path / "prep")]) == 0
    manifest = next((tmp_path / "prep").glob("*.json"))
    capsys.readouterr()
    a = args(setup, tmp_path / "run", 1, f"data.manifest={manifest}")
    a = [x for x in a if not x.startswith(("data.annotations=", "data.root="))] + [f"data.annotations={ann}",
                                                                                   f"data.root={data}"]
    assert main(["train", *a]) == 2
    err = capsys.readouterr().err
    assert "00003: empty" in err and "(train)" in err and "finecliper prepare" in err


def test_face_cache_files_are_checked_up_front(tmp_path):
    from finecliper.data.splits import ClipRecord
    from finecliper.face.backend import FaceTrack
    from finecliper.face.cache import cache_path, open_or_create, read_cache_hash, save_face_cache
    from finecliper.face.maps_extra import FaceMapsExtra

    manifest = open_or_create(tmp_path, {"backend": "test"})
    t = 3
    track = FaceTrack(landmarks68=np.zeros((t, 68, 2), np.float32), parsing=np.zeros((t, 8, 8), np.uint8),
                      boxes=np.zeros((t, 4), np.float32), valid=np.ones(t, bool), confidence=np.ones(t, np.float32),
                      n_faces=np.ones(t, np.int16), reasons=np.zeros(t, np.uint8), frame_hw=(8, 8))
    for cid in ("a", "b", "c"):
        save_face_cache(cache_path(tmp_path, cid), track, clip_id=cid, extractor_hash=manifest["extractor_hash"])
    save_face_cache(cache_path(tmp_path, "d"), track, clip_id="d", extractor_hash="another extractor")
    b = cache_path(tmp_path, "b")
    b.write_bytes(b.read_bytes()[:100])  # truncated: `extract` redoes it (no crash)
    assert read_cache_hash(b) is None
    recs = [ClipRecord(c, c, 0, (0,)) for c in ("a", "b", "d", "e")]
    problems = FaceMapsExtra(tmp_path, 32).check(recs)
    assert [p.split(":")[0] for p in problems] == ["b", "d", "e"]
    assert "unreadable or from another extractor" in problems[0] and "no face cache file" in problems[2]


# ----------------------------------------------------------------------------- backbones on resume and evaluation

def test_resume_and_evaluate_check_the_longclip_hash(setup, tmp_path, capsys):
    out = tmp_path / "run"
    d = f"descriptions={setup['good']}"
    assert main(["train", *args(setup, out, 2, d, "train.stop_after=1", variant="dagger")]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", *args(setup, out, 2, d, variant="dagger", longclip=setup["other_long"])]) == 2
    err = capsys.readouterr().err
    assert "trained on the longclip backbone longclip.pt" in err and err.count("\n") == 1
    assert main(["evaluate", "--checkpoint", str(out / "fold_1" / "last"), "--longclip", str(setup["other_long"]),
                 "--out", str(tmp_path / "ev"), *args(setup, out, 2, d, variant="dagger")]) == 2
    assert "trained on the longclip backbone longclip.pt" in capsys.readouterr().err
    assert main(["train", "--resume", *args(setup, out, 2, d, "model.pn_lambda=0.5", variant="dagger")]) == 2
    assert "model.pn_lambda: 1.0 -> 0.5" in capsys.readouterr().err
    assert main(["train", "--resume", *args(setup, out, 2, d, variant="dagger")]) == 0
    assert history(out / "fold_1") == [1, 2]


def test_gradient_accumulation_end_to_end(tmp_path, setup):
    """10 batches, accumulation 4, 3 epochs: 3 steps per epoch, and the last one at a learning rate > 0."""
    ann, data = make_dfew_clips(tmp_path / "ds", 10, 3, classes=5)
    a = [x for x in args(setup, tmp_path / "run", 3, "data.batch_size=1", "train.grad_accum=4")
         if not x.startswith(("data.annotations=", "data.root=", "data.batch_size=8"))]
    assert main(["train", *a, f"data.annotations={ann}", f"data.root={data}"]) == 0
    hist = [json.loads(line) for line in (tmp_path / "run" / "fold_1" / "history.jsonl").read_text().splitlines()]
    assert [h["steps"] for h in hist] == [3, 3, 3] and hist[-1]["lr"] > 0
