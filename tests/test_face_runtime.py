"""Run time without mediapipe, and a quiet terminal: `extract`, `extract --raw`, `predict` and the demo's
face loading in a fresh process where importing mediapipe raises; stderr holds no third-party log line
(LiteRT's "Created TensorFlow Lite XNNPACK delegate" banner included)."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from predict_media import astronaut_face, tiny_checkpoint, two_face_frames, write_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
THIRD_PARTY = re.compile(r"XNNPACK|TensorFlow|TfLite|absl|mediapipe|^\s*(INFO|WARNING|ERROR)\s*:|^[WIEF]\d{4} |"
                         r"Warning:|GetPrototype|inference_feedback", re.IGNORECASE | re.MULTILINE)

SCRIPT = """
import importlib.abc, sys

class BlockMediapipe(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "mediapipe" or name.startswith("mediapipe."):
            raise ImportError(f"mediapipe is blocked in this test (asked for {name})")
        return None

sys.meta_path.insert(0, BlockMediapipe())
from finecliper.cli.main import main
from finecliper.demo.faces import load_faces

rcs = [main(["extract", "--clips", CLIPS, "--out", OUT + "/cache"]),
       main(["extract", "--clips", CLIPS, "--out", OUT + "/raw", "--raw"]),
       main(["predict", VIDEO, "--checkpoint", CKPT, "--window", "1", "--stride", "1", "--describe",
             "--out", OUT + "/pred.json", "--quiet"])]
faces, _ = load_faces(2, 112)
assert "mediapipe" not in sys.modules, "mediapipe was imported"
print("RESULT", rcs, len(faces))
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime")
    clip = root / "clips" / "0001"
    clip.mkdir(parents=True)
    for k in range(4):
        f = cv2.resize(np.roll(astronaut_face(), k, axis=1), (112, 112), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(clip / f"{k:03d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    video = write_video(root / "two.mp4", two_face_frames(12), fps=10)
    ckpt = tiny_checkpoint(root / "ckpt", "base")
    consts = f"CLIPS = {str(root / 'clips')!r}\nOUT = {str(root)!r}\nVIDEO = {str(video)!r}\nCKPT = {str(ckpt)!r}\n"
    env = {"PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PATH": os.defpath, "HOME": str(root), "COLUMNS": "120"}
    proc = subprocess.run([sys.executable, "-c", consts + textwrap.dedent(SCRIPT)], capture_output=True, text=True,
                          env=env, timeout=600)
    return proc


def test_nothing_at_run_time_imports_mediapipe(run):
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RESULT [0, 0, 0] 2" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]


def test_no_third_party_log_line_on_the_terminal(run):
    noise = [line for line in (run.stdout + "\n" + run.stderr).splitlines() if THIRD_PARTY.search(line)]
    assert noise == [], noise
