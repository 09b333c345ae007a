"""Phone videos: the display rotation (display-matrix side data) is applied by every decode path, so a
rotation-tagged portrait video finds its face in every frame, as the same frames stored upright do."""
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from finecliper.data.frames import VideoFrames, decode_video, display_quarter_turns, open_frames
from finecliper.face.extract import ExtractConfig, extract_clip, iter_chunks
from finecliper.face.facemesh import FaceMeshAnalyser
from finecliper.predict.video import iter_frames, scan_video
from finecliper.face.crop import FaceDetector

sys.path.insert(0, str(Path(__file__).parent))
from predict_media import astronaut_face, paste, write_video  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
                                reason="writing a display matrix needs PyAV >= 17.1 (reading it: >= 14.1)")
N, H, W = 8, 176, 112   # portrait frames


def upright_frames() -> np.ndarray:
    out = np.empty((N, H, W, 3), np.uint8)
    for k in range(N):
        out[k] = 70
        paste(out[k], astronaut_face(), 8 + k, 30 + k, 96)
    return out


def write_tagged(path: Path, upright: np.ndarray, degrees: int) -> Path:
    """Store the frames turned so that a player applying the tag (``degrees`` counter-clockwise) shows them upright."""
    stored = np.rot90(upright, k=-(degrees // 90) % 4, axes=(1, 2))
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=Fraction(10))
        s.width, s.height, s.pix_fmt = stored.shape[2], stored.shape[1], "yuv420p"
        s.set_display_rotation(degrees)
        for f in stored:
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("rotation")
    up = upright_frames()
    out = {"upright": (write_video(root / "upright.mp4", up), 0)}
    for deg in (90, -90, 180):
        out[deg] = (write_tagged(root / f"tagged_{deg}.mp4", up, deg), deg)
    return up, out


@pytest.mark.parametrize("deg", [90, -90, 180])
def test_every_decode_path_turns_the_frames_upright(videos, deg):
    up, vids = videos
    path, _ = vids[deg]
    first = next(decode_video(path))
    assert display_quarter_turns(first) == (deg // 90) % 4
    if deg != 180:
        assert first.to_ndarray(format="rgb24").shape[:2] == (W, H)   # stored sideways: the tag is really there
    reads = {"VideoFrames.read": open_frames(path).read(range(N)),
             "predict iter_frames": np.stack(list(iter_frames(path))),
             "extract iter_chunks": np.concatenate(list(iter_chunks(path, 3)))}
    assert isinstance(open_frames(path), VideoFrames)
    for name, frames in reads.items():
        assert frames.shape == (N, H, W, 3), name
        assert np.abs(frames.astype(int) - up).mean() < 6, name        # codec noise only


@pytest.mark.parametrize("deg", [90, -90, 180])
def test_face_found_in_every_frame_of_a_rotation_tagged_video(videos, deg):
    _, vids = videos
    analyser = FaceMeshAnalyser()
    upright, _ = extract_clip(vids["upright"][0], analyser, ExtractConfig(chunk=4))
    tagged, _ = extract_clip(vids[deg][0], analyser, ExtractConfig(chunk=4))
    assert upright.valid.all() and tagged.valid.all() and tagged.frame_hw == (H, W)
    assert np.abs(tagged.landmarks68 - upright.landmarks68).mean() < 1.5
    scan = scan_video(vids[deg][0], FaceDetector())
    assert scan.info.frame_hw == (H, W) and all(len(d) == 1 for d in scan.detections)
