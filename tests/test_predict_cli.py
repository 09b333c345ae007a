"""`finecliper predict` on the command line: grammar, quiet, outputs checked before any work, the Hub,
and `finecliper evaluate --zero-shot-init`."""
import errno
import json
import pathlib
import sys
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import constants as hf_constants

from finecliper.cli.main import build_parser, main
from finecliper.cli.predict import split_inputs

sys.path.insert(0, str(Path(__file__).parent))
from hub_cache import publish  # noqa: E402
from predict_media import tiny_checkpoint, two_face_frames, write_video  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
N, FPS = 30, 10


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    two = write_video(root / "two.mp4", two_face_frames(N), fps=FPS)
    ckpt = tiny_checkpoint(root, "base", classes=["happiness", "sadness", "neutral"])
    return {"root": root, "two": two, "ckpt": ckpt, "clip": root / "clip.pt"}


def test_overrides_are_key_value_positionals_anywhere():
    assert split_inputs(["a.mp4", "window_s=2", "crop.margin=0.3", "./a=b.mp4", "dir/x=y.mp4"]) == (
        ["a.mp4", "./a=b.mp4", "dir/x=y.mp4"], ["window_s=2", "crop.margin=0.3"])
    args = build_parser().parse_known_args(["predict", "a.mp4", "--out", "r.csv", "window_s=2", "b.mp4"])
    assert args[1] == ["window_s=2", "b.mp4"]  # cli.main hands these to `inputs` (MORE_POSITIONALS)


def test_help_documents_every_option_and_ends_with_examples(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    last = [ln for ln in text.rstrip().splitlines()][-3:]
    assert all(ln.startswith("  finecliper predict ") for ln in last)
    parser = build_parser()._subparsers._group_actions[0].choices["predict"]
    assert all(a.help for a in parser._actions), [a.dest for a in parser._actions if not a.help]
    assert "./a=b.mp4" in text and "end exclusive" in text


def test_default_model_is_fer_said_in_one_line_and_quiet_prints_nothing(media, tmp_path, capfd):
    out = tmp_path / "r.json"
    assert main(["predict", str(media["two"]), "--out", str(out), "window_s=2", "stride_s=1"]) == 0
    o, e = capfd.readouterr()
    notes = [ln for ln in e.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "fer baseline" in notes[0] and "--checkpoint" in notes[0]
    assert "frames/s" in o and "x real time" in o
    v = json.loads(out.read_text())["videos"][0]
    assert v["scorer"] == "fer" and [w["end_s"] for w in v["windows"]] == [2.0, 3.0]
    out2 = tmp_path / "q.json"
    assert main(["predict", str(media["two"]), "--quiet", "--out", str(out2)]) == 0
    assert capfd.readouterr() == ("", "")
    assert json.loads(out2.read_text())["videos"][0]["tracks"]


def test_bad_override_and_bad_combinations_are_one_line(media, capfd):
    cases = [
        (["nonsense_key=1"], "nonsense_key"),
        (["--zero-shot"], "--zero-shot needs the frozen CLIP"),
        (["--classes", "a,b"], "--classes needs a FineCLIPER model"),
        (["--explain", "ex"], "--explain needs a FineCLIPER model"),
        (["--checkpoint", "x", "--baseline", "fer"], None),  # argparse: not allowed together
    ]
    for extra, needle in cases:
        with pytest.raises(SystemExit) if needle is None else _nothing():
            rc = main(["predict", str(media["two"]), *extra])
            assert rc == 2
        err = capfd.readouterr().err.strip().splitlines()
        if needle is not None:
            assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_outputs_are_checked_before_any_decoding(media, tmp_path, monkeypatch, capfd):
    import finecliper.predict.pipeline as pipeline

    def no_decoding(*a, **k):
        raise AssertionError("decoded before the outputs were checked")

    monkeypatch.setattr(pipeline, "scan_video", no_decoding)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for flag, target in (("--out", blocker / "r.csv"), ("--overlay", blocker / "o.mp4"), ("--explain", blocker / "ex")):
        extra = ["--zero-shot", "--clip", str(media["clip"])] if flag == "--explain" else []
        assert main(["predict", str(media["two"]), flag, str(target), *extra]) == 2
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {blocker}") and "in the way" in err[0], err
    # a read-only or full disk: the probe file fails (simulated: the tests may run as root)
    real = pathlib.Path.write_bytes

    def refuse(self, data):
        if self.name.startswith(".write-probe"):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", refuse)
    assert main(["predict", str(media["two"]), "--out", str(tmp_path / "ro" / "r.json")]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'ro'}: read-only file system; write elsewhere (out=DIR)"]


def test_a_finished_result_is_not_replaced_without_overwrite(media, tmp_path, capfd):
    out = tmp_path / "r.csv"
    (tmp_path / "r.tracks.csv").write_text("earlier\n")
    assert main(["predict", str(media["two"]), "--out", str(out), "--quiet"]) == 2
    assert "r.tracks.csv exists; pass --overwrite" in capfd.readouterr().err
    assert (tmp_path / "r.tracks.csv").read_text() == "earlier\n" and not out.exists()
    assert main(["predict", str(media["two"]), "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert (tmp_path / "r.tracks.csv").read_text().startswith("video,face_id")


def test_predict_by_hub_id_from_the_cache_offline(media, tmp_path, monkeypatch):
    from finecliper.model import hub

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    publish(hub.stage(media["ckpt"], tmp_path / "staged"), tmp_path / "hf", "alice/tiny")
    local, by_id = tmp_path / "local.json", tmp_path / "id.json"
    common = [str(media["two"]), "--clip", str(media["clip"]), "--quiet", "window_s=2", "stride_s=1"]
    assert main(["predict", "--checkpoint", str(media["ckpt"]), "--out", str(local), *common]) == 0
    assert main(["predict", "--checkpoint", "alice/tiny", "--out", str(by_id), *common]) == 0
    a, b = (json.loads(p.read_text())["videos"][0] for p in (local, by_id))
    assert a["windows"] == b["windows"] and a["frames"] == b["frames"]


def test_evaluate_zero_shot_init_scores_clip_pn_on_a_dataset(media, tmp_path):
    import torch

    from finecliper.config import load_config
    from finecliper.data.dataset import build_datasets
    from finecliper.predict.scorers import zero_shot_model
    from finecliper.train.config import ExperimentConfig

    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic import make_dfew_like

    ann, data = make_dfew_like(tmp_path / "ds", n_train_per_class=1, n_test_per_class=1)
    common = [f"data.annotations={ann}", f"data.root={data}", "data.image_size=32", "model.num_frames=4",
              "data.batch_size=8", "data.workers=0"]
    ev = tmp_path / "ev"
    assert main(["evaluate", "--zero-shot-init", "--clip", str(media["clip"]), "--out", str(ev), *common]) == 0
    report = json.loads((ev / "test_summary.json").read_text())
    assert report["zero_shot"] is True and report["model"].startswith("FineCLIPER at initialisation")
    pred = json.loads((ev / "predictions.json").read_text())
    assert len(pred["clip_ids"]) == 7 and np.allclose(np.sum(pred["probs"], 1), 1, atol=1e-3)
    # the same numbers as the zero-shot model on the same test clips
    cfg = load_config(ExperimentConfig, None, common)
    _, test_ds = build_datasets(cfg.data)
    model = zero_shot_model(media["clip"], classes=["happiness", "sadness", "neutral", "anger", "surprise", "disgust",
                                                    "fear"], num_frames=4)
    item = test_ds[0]
    with torch.no_grad():
        p = torch.softmax(model({"frames": item["frames"][None]}).logits, -1)[0].numpy()
    assert np.allclose(pred["probs"][pred["clip_ids"].index(item["clip_id"])], p, atol=1e-4)
    assert main(["evaluate", "--zero-shot-init", "--out", str(ev), *common]) == 2  # no --clip


def test_progress_bar_only_for_long_videos_and_never_when_quiet(capfd, monkeypatch):
    import rich.progress

    from finecliper.cli.predict import LONG_VIDEO_FRAMES, make_progress

    made = []

    class Recorder(rich.progress.Progress):  # the real bar, its creation and stages recorded
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append({"stderr": kw["console"].stderr, "transient": kw["transient"], "tasks": [], "stopped": False})

        def add_task(self, description, **kw):
            made[-1]["tasks"].append(description)
            return super().add_task(description, **kw)

        def stop(self):
            made[-1]["stopped"] = True
            super().stop()

    monkeypatch.setattr(rich.progress, "Progress", Recorder)
    assert make_progress(quiet=True)(Path("a.mp4")) is None
    short = make_progress(quiet=False)(Path("short.mp4"))
    for k in range(1, 11):
        short("faces", k, 10)
    assert made == [] and capfd.readouterr() == ("", "")  # no bar for a short video
    long = make_progress(quiet=False)(Path("long.mp4"))
    n = LONG_VIDEO_FRAMES + 10
    for stage in ("faces", "scoring"):
        for k in range(1, n + 1):
            long(stage, k, n)
    assert made == [{"stderr": True, "transient": True, "stopped": True,
                     "tasks": ["long.mp4: finding faces", "long.mp4: scoring"]}]
    assert capfd.readouterr().out == ""  # the bar lives on stderr (and is transient)
