import numpy as np
import pytest

from finecliper.data.frames import FrameError, natural_key, open_frames, resolve_clip_path
from finecliper.data.splits import ClipRecord
from finecliper.data.synthetic import level_to_index, write_frame_folder, write_video


def test_natural_sort():
    names = ["frame_10.jpg", "frame_2.jpg", "frame_1.jpg"]
    assert sorted(names, key=natural_key) == ["frame_1.jpg", "frame_2.jpg", "frame_10.jpg"]


def test_folder_reads_requested_indices_in_natural_order(tmp_path):
    src = open_frames(write_frame_folder(tmp_path / "c", 12, 24, 20))  # 0.jpg..11.jpg
    assert src.num_frames == 12 and src.fps is None
    out = src.read([10, 2, 2, 11])
    assert out.shape == (4, 24, 20, 3) and out.dtype == np.uint8
    assert [level_to_index(f) for f in out] == [10, 2, 2, 11]


def test_png_frames_and_rgb_order(tmp_path):
    import cv2

    d = tmp_path / "p"
    d.mkdir()
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = 200  # red in RGB
    cv2.imwrite(str(d / "1.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = open_frames(d).read([0])
    assert out[0, 0, 0].tolist() == [200, 0, 0]


def test_video_reads_requested_indices(tmp_path):
    src = open_frames(write_video(tmp_path / "v.mp4", 30, 32, 32, fps=25))
    assert src.num_frames == 30 and src.fps == 25.0
    out = src.read([0, 7, 7, 29, 3])
    assert out.shape == (5, 32, 32, 3)
    assert [level_to_index(f) for f in out] == [0, 7, 7, 29, 3]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FrameError, match="not found"):
        open_frames(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FrameError, match="empty.*no jpg"):
        open_frames(tmp_path / "empty")
    d = write_frame_folder(tmp_path / "bad", 3)
    (d / "1.jpg").write_bytes(b"not a jpeg")
    src = open_frames(d)
    src.read([0, 2])
    with pytest.raises(FrameError, match=r"1.jpg: unreadable image"):
        src.read([1])
    with pytest.raises(IndexError, match="0..2"):
        src.read([3])
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(FrameError, match="corrupt.mp4"):
        open_frames(tmp_path / "corrupt.mp4")


def test_truncated_video_is_an_error(tmp_path):
    p = write_video(tmp_path / "t.mp4", 30, 32, 32)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrameError, match="t.mp4"):
        open_frames(p).read([29])


def test_resolve_clip_path(tmp_path):
    write_frame_folder(tmp_path / "00001", 2)
    write_video(tmp_path / "03747.mp4", 3)
    write_video(tmp_path / "x" / "7.avi", 3)
    assert resolve_clip_path(tmp_path, ClipRecord("00001", "00001", 0, (0,))) == tmp_path / "00001"
    assert resolve_clip_path(tmp_path, ClipRecord("03747", "03747", 0, (0,))) == tmp_path / "03747.mp4"
    assert resolve_clip_path(tmp_path, "x/7") == tmp_path / "x" / "7.avi"
    with pytest.raises(FrameError, match=r"'00002' not found"):
        resolve_clip_path(tmp_path, ClipRecord("00002", "00002", 0, (0,)))
