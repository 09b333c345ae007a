"""``Predictor``: a scorer (FineCLIPER checkpoint, zero-shot CLIP, or a static baseline) on any video,
per face track and time window.

1. pass 1 (``video.scan_video``): decode every frame, detect every face, measure colour changes; shot
   cuts (``shots``) split the video, and ``video.face_tracks`` gives the largest face of each shot
   (default) or every face (``all_faces``), each with a persistent id, a minimum duration and size;
2. per track: windows (``windows.plan_windows``, in the stream's own time) and the frames the scorer
   reads in each (``Scorer.window_frames``), with the crop framing it wants (``Scorer.crop_track``);
3. pass 2: decode again and crop those frames; when the scorer needs face maps or descriptions (or
   ``describe``/``explain`` is asked), the face-mesh analyser runs on every analysis crop of the span in
   video mode, one analyser per track. A window is scored (in batches) as soon as its last frame is in,
   so memory does not grow with the video's length;
4. a track's probabilities are the mean of its windows' probabilities; a frame's are the mean of the
   windows of its track that hold it (``tables``).

Units: frames [start, end) (end exclusive), seconds from the first frame's pts, boxes in frame pixels.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from finecliper.config import ConfigError
from finecliper.data.augment import apply_image, eval_geom
from finecliper.data.frames import FrameError
from finecliper.face.crop import CropConfig, CropTrack, FaceDetector, crop_frames, smooth_boxes
from finecliper.face.facemesh import FaceMeshAnalyser, FaceMeshConfig
from finecliper.predict import explain as ex
from finecliper.predict.scorers import FineCLIPERScorer, Scorer, UntrainedClassesWarning, WindowInput, make_scorer
from finecliper.predict.shots import find_cuts, shot_ranges
from finecliper.predict.video import TrackBoxes, VideoInfo, face_tracks, iter_video, scan_video
from finecliper.predict.windows import Window, plan_windows
from finecliper.text.landmark_describer import describe_landmarks

__all__ = ["PredictConfig", "Predictor", "VideoResult", "TrackResult", "WindowResult", "predict_videos",
           "UntrainedClassesWarning"]

EXPLAIN_MAPS = ("gradient", "attention", "both")
StageProgress = Callable[[str, int, int], None]  # (stage, frames done, frames expected)


@dataclass
class PredictConfig:
    all_faces: bool = False        # every face gets a track (default: the largest face of each shot)
    window_s: float = 3.0          # window length in seconds (a span no longer than this is one window)
    stride_s: float = 1.5          # window stride in seconds
    min_track_s: float = 0.5       # tracks seen for less (first to last detection) are dropped, in every mode
    min_face_px: float = 32.0      # tracks whose median face box side is smaller are dropped, in every mode
    link_gap_s: float = 1.0        # a face lost for up to this long keeps its track id (within a shot)
    cut_threshold: float = 0.4     # shot cut: colour-histogram distance of consecutive frames above this (0: off)
    min_coverage: float = 0.5      # warn when a face is found in fewer of its span's frames, or faces in fewer of the video's
    describe: bool = False         # add the landmark describer's text per track and window
    explain: str | None = None     # folder for per-window explanation PNGs
    explain_maps: str = "both"     # gradient (gradient x input) | attention (last block's CLS attention) | both
    batch_size: int = 8            # windows per model call
    device: str = "auto"           # auto | cpu | cuda | cuda:N
    precision: str = "auto"        # auto (bf16 autocast on CUDA) | fp32 | bf16
    default_fps: float = 25.0      # for frame folders and files without a rate
    detect_size: int = 640         # frames are shrunk to this longer side for face detection (0: full size)
    chunk: int = 64                # crops per analyser call
    crop: CropConfig = field(default_factory=CropConfig)  # how each face track is cropped
    facemesh: FaceMeshConfig = field(default_factory=FaceMeshConfig)  # the LiteRT face detector and mesh

    def __post_init__(self) -> None:
        checks = [
            (self.window_s > 0 and self.stride_s > 0, f"window_s and stride_s must be > 0, got {self.window_s}, {self.stride_s}"),
            (self.min_track_s >= 0 and self.min_face_px >= 0, "min_track_s and min_face_px must be >= 0"),
            (self.link_gap_s >= 0, f"link_gap_s must be >= 0, got {self.link_gap_s}"),
            (0 <= self.cut_threshold < 1, f"cut_threshold must be in [0, 1) (0: no cut detection), got {self.cut_threshold}"),
            (0 <= self.min_coverage <= 1, f"min_coverage must be in [0, 1], got {self.min_coverage}"),
            (self.explain_maps in EXPLAIN_MAPS, f"explain_maps must be one of {', '.join(EXPLAIN_MAPS)}, got {self.explain_maps!r}"),
            (self.batch_size >= 1 and self.chunk >= 1, "batch_size and chunk must be >= 1"),
            (self.default_fps > 0, f"default_fps must be > 0, got {self.default_fps}"),
            (self.crop.out_size >= 32, f"crop.out_size must be at least 32 px (the face analyser runs on the crops), "
                                       f"got {self.crop.out_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass
class WindowResult:
    index: int
    start_frame: int
    end_frame: int             # exclusive
    start_s: float
    end_s: float               # end of the window's last frame
    frames: list[int]          # frames the scorer read
    label: str
    probs: list[float]         # (K,) in ``VideoResult.classes`` order
    weights: dict[str, float]  # fusion weight per modality (empty for a static baseline)
    n_valid: int               # frames read where the face was detected
    box: list[float] | None    # mean detected box (x0, y0, x1, y1) over the window, frame pixels
    description: str | None = None
    explanation: str | None = None           # gradient x input PNG path
    attention: str | None = None             # CLS attention PNG path
    regions: dict[str, float] | None = None  # share of the gradient attribution per face region


@dataclass
class TrackResult:
    track_id: int
    start_frame: int           # first frame where the face was detected
    end_frame: int             # one past the last (exclusive)
    start_s: float
    end_s: float
    label: str
    probs: list[float]         # mean of the windows' probabilities
    face_valid: np.ndarray     # (N,) bool over the whole video: this face detected in the frame
    boxes: np.ndarray          # (N, 4) float32 detected boxes, frame pixels (zeros where not found)
    confidence: np.ndarray     # (N,) float32 detector confidence (0 where not found)
    windows: list[WindowResult]
    shot: int = 0
    coverage: float = 1.0      # share of the frames of [start_frame, end_frame) where the face was detected
    description: str | None = None


def frame_probs(track: TrackResult, num_frames: int) -> np.ndarray:
    """(N, K) mean probabilities of the track's windows holding each frame (NaN where none does)."""
    k = len(track.probs)
    total, count = np.zeros((num_frames, k)), np.zeros(num_frames)
    for w in track.windows:
        total[w.start_frame:w.end_frame] += np.asarray(w.probs)
        count[w.start_frame:w.end_frame] += 1
    with np.errstate(invalid="ignore"):
        return total / count[:, None]


@dataclass
class VideoResult:
    video: str
    fps: float                 # the container's rate (frame folders: default_fps)
    num_frames: int
    frame_size: tuple[int, int]  # (H, W)
    times: np.ndarray          # (N + 1,) seconds: each frame's start (from pts), then the end of the last
    classes: list[str]
    tracks: list[TrackResult]
    scorer: str                # fer | finecliper | zero-shot
    model: dict[str, Any] = field(default_factory=dict)
    message: str | None = None   # why there is no track
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    shots: list[tuple[int, int]] = field(default_factory=list)  # [start, end) frame ranges
    rejected_tracks: int = 0   # face tracks dropped as too short or too small
    times_from_pts: bool = True

    @property
    def duration(self) -> float:
        return float(self.times[-1])


class _Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


@dataclass
class _Track:
    """Pass-2 state of one track."""
    boxes: TrackBoxes
    crop: CropTrack                     # the face-analysis framing (``PredictConfig.crop``)
    scorer_crop: CropTrack              # the scorer's framing (often the same object)
    windows: list[Window]
    reads: list[tuple[int, ...]]        # per window: the frames the scorer reads
    needed: set[int]
    crops: dict[int, np.ndarray] = field(default_factory=dict)    # scorer crops not yet used up
    parsing: dict[int, np.ndarray] = field(default_factory=dict)  # LaPa ids of the analysis crops
    landmarks: np.ndarray | None = None     # (N, 68, 2) analysis-crop pixels
    depth: np.ndarray | None = None         # (N, 68) mesh depth, NaN where none
    mesh_valid: np.ndarray | None = None    # (N,) bool
    buffer: list[tuple[int, np.ndarray]] = field(default_factory=list)
    analyser: Any = None
    analysed: int = 0                       # frames before this one are analysed
    next_window: int = 0                    # windows before this one are queued

    @property
    def first(self) -> int:
        return self.boxes.first

    @property
    def end(self) -> int:
        return self.boxes.end


class Predictor:
    """Runs a :class:`~finecliper.predict.scorers.Scorer` over videos (see the module doc)."""

    def __init__(self, scorer: Scorer, cfg: PredictConfig | None = None):
        self.cfg = cfg or PredictConfig()
        self.scorer = scorer
        if self.cfg.explain and not scorer.explainable:
            raise ValueError(f"--explain needs a FineCLIPER model (--checkpoint or --zero-shot); the {scorer.name} "
                             f"baseline is not differentiable")
        self.detector = FaceDetector(self.cfg.crop.detector_model, self.cfg.crop.min_detection_confidence)

    @classmethod
    def from_checkpoint(cls, directory, clip=None, longclip=None, cfg: PredictConfig | None = None,
                        classes: list[str] | None = None, revision: str | None = None) -> "Predictor":
        """A FineCLIPER checkpoint folder or Hub id."""
        cfg = cfg or PredictConfig()
        return cls(make_scorer(checkpoint=directory, clip=clip, longclip=longclip, classes=classes, device=cfg.device,
                               precision=cfg.precision, revision=revision), cfg)

    @property
    def classes(self) -> list[str]:
        return self.scorer.classes

    def set_classes(self, classes: list[str]) -> list[str]:
        if not isinstance(self.scorer, FineCLIPERScorer):
            raise ValueError(f"the {self.scorer.name} baseline scores its own classes")
        return self.scorer.set_classes(classes)

    @property
    def needs_analysis(self) -> bool:
        s = self.scorer
        return s.needs_maps or s.needs_description or self.cfg.describe or bool(self.cfg.explain)

    def close(self) -> None:
        self.scorer.close()

    # ---------------------------------------------------------------- the run
    def predict(self, path: str | Path, progress: StageProgress | None = None) -> VideoResult:
        """Every face track of one video; raises ``FrameError`` naming the file when it cannot be decoded."""
        path = Path(path)
        cfg = self.cfg
        timer = _Timer()
        t_start = time.perf_counter()
        scan = scan_video(path, self.detector, cfg.default_fps, cfg.detect_size,
                          None if progress is None else (lambda d, n: progress("faces", d, n)))
        timer.seconds.update(scan.seconds)
        info = scan.info
        with timer("track"):
            shot_list = shot_ranges(info.num_frames, find_cuts(scan.cut_distances, cfg.cut_threshold))
            tracks, rejected = face_tracks(scan.detections, info.times, shot_list, all_faces=cfg.all_faces,
                                           min_track_s=cfg.min_track_s, min_face_px=cfg.min_face_px,
                                           link_gap_s=cfg.link_gap_s)
        result = VideoResult(str(path), info.fps, info.num_frames, info.frame_hw, info.times, list(self.classes), [],
                             self.scorer.name, self.scorer.describe(), warnings=list(self.scorer.warnings),
                             shots=shot_list, rejected_tracks=rejected, times_from_pts=info.times_from_pts)
        if not info.fps_from_file:
            result.warnings.append(f"{path}: no frame rate in the file; times assume {info.fps:g} fps")
        elif not info.times_from_pts:
            result.warnings.append(f"{path}: the frames carry no usable timestamps; times assume {info.fps:g} fps")
        if not tracks:
            seen = sum(1 for d in scan.detections if d)
            result.message = (f"no face found in {path} ({info.num_frames} frames): nothing to predict" if not seen else
                              f"no face track in {path}: faces were detected in {seen} of {info.num_frames} frames, but "
                              f"none lasted {cfg.min_track_s:g} s at {cfg.min_face_px:g} px or more: nothing to predict")
            result.seconds = {**timer.seconds, "total": time.perf_counter() - t_start}
            return result
        with timer("track"):
            data = [self._plan(t, info) for t in tracks]
        scores = self._pass2(path, info, data, timer, progress)
        result.tracks = [self._track_result(d, scores[j], info) for j, d in enumerate(data)]
        result.warnings += coverage_warnings(result, cfg.min_coverage)
        result.seconds = {**timer.seconds, "total": time.perf_counter() - t_start}
        return result

    def _plan(self, t: TrackBoxes, info: VideoInfo) -> _Track:
        crop = smooth_boxes(t.boxes, t.found, info.frame_hw, self.cfg.crop)
        scorer_crop = self.scorer.crop_track(t, info.frame_hw) or crop  # None: the analysis framing, cropped once
        windows = plan_windows(t.first, t.last, info.fps, self.scorer.num_frames, self.cfg.window_s,
                               self.cfg.stride_s, times=info.times)
        reads = [tuple(self.scorer.window_frames(w, t.found)) for w in windows]
        d = _Track(t, crop, scorer_crop, windows, reads, {i for r in reads for i in r})
        if self.needs_analysis:
            n = info.num_frames
            d.landmarks, d.depth = np.zeros((n, 68, 2), np.float32), np.full((n, 68), np.nan, np.float32)
            d.mesh_valid = np.zeros(n, bool)
        return d

    # ---------------------------------------------------------------- pass 2
    def _pass2(self, path: Path, info: VideoInfo, data: list[_Track], timer: _Timer,
               progress: StageProgress | None) -> list[dict[int, tuple]]:
        """Decode again; crop, analyse and score each window once its frames are in. Returns per track
        {window position: (probs, weights, description, explanation paths)}."""
        analyse = self.needs_analysis
        scores: list[dict[int, tuple]] = [{} for _ in data]
        queue: list[tuple[int, int]] = []
        stop = max(max(d.end if analyse else 0, max(d.needed) + 1) for d in data)

        def wanted(i: int) -> bool:
            return any((analyse and d.first <= i < d.end) or i in d.needed for d in data)

        frames = iter_video(path, wanted)
        try:
            for i in range(stop):
                with timer("decode"):
                    item = next(frames, None)
                if item is None:
                    break
                frame = item[2]
                if frame is not None:
                    with timer("crop"):
                        for d in data:
                            self._take(d, i, frame, analyse, timer)
                for j, d in enumerate(data):
                    while d.next_window < len(d.windows) and self._ready(d, d.next_window, i, analyse):
                        queue.append((j, d.next_window))
                        d.next_window += 1
                if len(queue) >= self.cfg.batch_size:
                    self._score(queue, data, scores, info, path, timer)
                    queue = []
                if progress is not None:
                    progress("scoring", i + 1, stop)
        finally:
            frames.close()
            for d in data:
                if d.analyser is not None:
                    d.analyser.close()
        if queue:
            self._score(queue, data, scores, info, path, timer)
        for j, d in enumerate(data):
            if len(scores[j]) < len(d.windows):
                k = len(scores[j])
                raise FrameError(f"{path}: frames up to {d.windows[k].end - 1} were decoded in the first pass but not "
                                 f"the second; the file decodes differently each time")
        return scores

    @staticmethod
    def _ready(d: _Track, k: int, i: int, analyse: bool) -> bool:
        """Window k can be scored once frame i is in: every frame it reads is cropped, and with face
        analysis every frame of its span is analysed (its description and maps need them)."""
        if analyse:
            return d.windows[k].end <= d.analysed
        return max(d.reads[k]) <= i

    def _take(self, d: _Track, i: int, frame: np.ndarray, analyse: bool, timer: _Timer) -> None:
        """Frame i for track d: keep the scorer's crop, queue the analysis crop, analyse a full chunk."""
        in_span = analyse and d.first <= i < d.end
        if not (in_span or i in d.needed):
            return
        crop = crop_frames(frame[None], d.crop, offset=i)[0] if in_span else None  # (Sc, Sc, 3)
        if i in d.needed:
            d.crops[i] = crop if (crop is not None and d.scorer_crop is d.crop) else \
                crop_frames(frame[None], d.scorer_crop, offset=i)[0]
        if in_span:
            d.buffer.append((i, crop))
            if len(d.buffer) >= self.cfg.chunk or i == d.end - 1:
                with timer("analyse"):
                    self._analyse(d)

    def _analyse(self, d: _Track) -> None:
        reset = d.analyser is None
        if reset:
            d.analyser = FaceMeshAnalyser(self.cfg.facemesh)
        idx = [i for i, _ in d.buffer]
        ft = d.analyser.analyse(np.stack([c for _, c in d.buffer]), video=True, reset=reset)
        d.landmarks[idx], d.mesh_valid[idx], d.depth[idx] = ft.landmarks68, ft.valid, ft.depth68
        for r, i in enumerate(idx):
            if i in d.needed:
                d.parsing[i] = ft.parsing[r]
        d.analysed = idx[-1] + 1
        d.buffer = []

    def _window_input(self, d: _Track, k: int, info: VideoInfo) -> WindowInput:
        w, frames = d.windows[k], d.reads[k]
        idx = list(frames)
        inp = WindowInput(d.boxes.track_id, w, frames, np.stack([d.crops[i] for i in idx]), d.boxes.found[idx])
        if self.needs_analysis:
            inp.landmarks, inp.mesh_valid = d.landmarks[idx], d.mesh_valid[idx]
            if all(i in d.parsing for i in idx):
                inp.parsing = np.stack([d.parsing[i] for i in idx])
        if self.scorer.needs_description or self.cfg.describe:
            inp.description = self._describe(d, w.start, w.end, info)
        return inp

    def _score(self, queue: list[tuple[int, int]], data: list[_Track], scores: list[dict[int, tuple]],
               info: VideoInfo, path: Path, timer: _Timer) -> None:
        with timer("inputs"):
            inputs = [self._window_input(data[j], k, info) for j, k in queue]
        with timer("model"):
            out = self.scorer.score(inputs)
        for n, ((j, k), inp) in enumerate(zip(queue, inputs)):
            paths = {}
            if self.cfg.explain:
                with timer("explain"):
                    paths = self._explain(path, data[j], k, inp, out.probs[n])
            scores[j][k] = (out.probs[n], out.weights[n], inp.description, paths)
        for j in {j for j, _ in queue}:  # crops no later window of the track reads
            d = data[j]
            keep = min((min(r) for r in d.reads[d.next_window:]), default=info.num_frames)
            for i in [i for i in d.crops if i < keep]:
                del d.crops[i]
                d.parsing.pop(i, None)

    # ---------------------------------------------------------------- descriptions, explanations, results
    def _describe(self, d: _Track, start: int, end: int, info: VideoInfo) -> str:
        fps = (end - start) / max(info.span_s(start, end), 1e-9)  # the span's own rate (pts)
        return describe_landmarks(d.landmarks[start:end], d.mesh_valid[start:end], depth=d.depth[start:end], fps=fps).text

    def _explain(self, path: Path, d: _Track, k: int, inp: WindowInput, probs: np.ndarray) -> dict[str, Any]:
        scorer: FineCLIPERScorer = self.scorer  # type: ignore[assignment]  (explainable)
        w = d.windows[k]
        batch = scorer.batch([inp])  # a batch of one window, on the model's device
        label = int(np.argmax(probs))
        frames = ex.denormalize(batch["frames"][0])
        stem = Path(self.cfg.explain) / f"{path.stem}_track{d.boxes.track_id}_window{k:03d}"
        top = np.argsort(probs)[::-1][:3]
        head = [f"{path.name}  track {d.boxes.track_id}  {w.start_s:.2f}-{w.end_s:.2f} s",
                f"predicted {self.classes[label]}: " + ", ".join(f"{self.classes[c]} {probs[c]:.2f}" for c in top)]
        out: dict[str, Any] = {}
        if self.cfg.explain_maps in ("gradient", "both"):
            attr = ex.grad_times_input(scorer.model, batch, label).numpy()     # (T, S, S)
            if inp.parsing is not None:
                geom = eval_geom(inp.crops.shape[1], inp.crops.shape[1], scorer.image_size)
                labels = np.stack([apply_image(p, geom, "nearest") for p in inp.parsing])
                out["regions"] = {r: round(v, 4) for r, v in ex.region_shares(attr, labels, inp.mesh_valid).items()}
            title = head + ["heat: |grad x input| of the predicted class"]
            if out.get("regions"):
                title.append("  ".join(f"{r} {100 * v:.0f}%" for r, v in sorted(out["regions"].items(), key=lambda kv: -kv[1])
                                       if v >= 0.01))
            png = stem.with_name(stem.name + ".png")
            ex.write_png(png, ex.heatmap_grid(frames, attr, title))
            out["explanation"] = str(png)
        if self.cfg.explain_maps in ("attention", "both"):
            attn = ex.attention_maps(scorer.model, batch["frames"])              # (T, S, S)
            png = stem.with_name(stem.name + "_attention.png")
            ex.write_png(png, ex.heatmap_grid(frames, attn, head + ["heat: last block's CLS attention over patches"],
                                              smooth=False))
            out["attention"] = str(png)
        return out

    def _track_result(self, d: _Track, scores: dict[int, tuple], info: VideoInfo) -> TrackResult:
        t = d.boxes
        windows = []
        for k, w in enumerate(d.windows):
            p, weights, text, paths = scores[k]
            found = t.found[w.start:w.end]
            box = t.boxes[w.start:w.end][found].mean(0).round(1).tolist() if found.any() else None
            windows.append(WindowResult(
                k, w.start, w.end, round(w.start_s, 4), round(w.end_s, 4), list(d.reads[k]), self.classes[int(np.argmax(p))],
                p.tolist(), dict(zip(self.scorer.modalities, weights.tolist())), int(t.found[list(d.reads[k])].sum()), box,
                description=text, explanation=paths.get("explanation"), attention=paths.get("attention"),
                regions=paths.get("regions")))
        mean = np.mean([w.probs for w in windows], axis=0)
        desc = self._describe(d, t.first, t.end, info) if self.cfg.describe else None
        return TrackResult(t.track_id, t.first, t.end, round(float(info.times[t.first]), 4),
                           round(float(info.times[t.end]), 4), self.classes[int(mean.argmax())], mean.tolist(),
                           t.found.copy(), t.boxes.copy(), t.scores.copy(), windows, t.shot, round(t.coverage, 4), desc)


def coverage_warnings(result: VideoResult, min_coverage: float) -> list[str]:
    """A face found in few frames of its span, or faces in few frames of the video: the labels rest on little."""
    out = []
    for t in result.tracks:
        if t.coverage < min_coverage:
            n = int(t.face_valid.sum())
            out.append(f"face {t.track_id}: found in {n} of {t.end_frame - t.start_frame} frames ({100 * t.coverage:.0f} %) "
                       f"of {t.start_s:.2f}-{t.end_s:.2f} s; its labels rest on few frames")
    seen = np.zeros(result.num_frames, bool)
    for t in result.tracks:
        seen |= t.face_valid
    share = float(seen.mean()) if result.num_frames else 0.0
    if result.tracks and share < min_coverage:
        out.append(f"{result.video}: faces found in {int(seen.sum())} of {result.num_frames} frames ({100 * share:.0f} %) "
                   f"of the video; the rest has no label")
    return out


def predict_videos(predictor: Predictor, paths: list[str | Path], progress: Callable[[Path], StageProgress | None] | None = None
                   ) -> Iterator[tuple[Path, VideoResult | None, str | None]]:
    """(path, result, error message) per video; one unreadable file does not stop the others."""
    for p in paths:
        try:
            yield Path(p), predictor.predict(p, None if progress is None else progress(Path(p))), None
        except (FrameError, OSError, ValueError) as e:
            msg = str(e)
            if str(p) not in msg:
                msg = f"{p}: {msg}"
            yield Path(p), None, msg
