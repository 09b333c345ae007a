"""Optional extras: a missing one is one line that names it; `finecliper info` lists each one's state."""
import importlib.util

import pytest
from PIL import Image

from finecliper import extras
from finecliper.cli.main import main
from finecliper.extras import EXTRAS, MissingExtra, require


def hide(monkeypatch, *modules):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in modules else real(name, *a))


def test_a_missing_extra_names_itself_and_the_install_command(monkeypatch):
    hide(monkeypatch, "accelerate")
    with pytest.raises(MissingExtra) as e:
        require("llava", "the video-llava backend")
    assert str(e.value) == ("the video-llava backend needs the optional extra finecliper[llava] (accelerate missing): "
                            "pip install 'finecliper[llava]'")


def test_video_llava_without_its_extra_is_one_error_line(monkeypatch, tmp_path, capsys):
    from finecliper.text.video_llava import VideoLlavaDescriber

    hide(monkeypatch, "accelerate")
    with pytest.raises(MissingExtra, match=r"finecliper\[llava\]"):
        VideoLlavaDescriber(tmp_path)
    clips = tmp_path / "clips" / "a"
    clips.mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(clips / "00001.jpg")
    code = main(["describe", "--backend", "video-llava", "--clips", str(tmp_path / "clips"), "--model", str(tmp_path),
                 "--out", str(tmp_path / "d.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "pip install 'finecliper[llava]'" in err[0], err


def test_info_lists_every_extra_with_its_state(monkeypatch, capsys):
    hide(monkeypatch, "accelerate")
    monkeypatch.setattr(extras, "installed_versions",
                        lambda name: {d: (None if d == "accelerate" else "1.0") for d in EXTRAS[name].distributions})
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "finecliper[llava]: not installed: pip install 'finecliper[llava]'; adds Video-LLaVA" in out
    assert "finecliper[dev]: installed (pytest 1.0, pytest-timeout 1.0, build 1.0); adds the test suite" in out
