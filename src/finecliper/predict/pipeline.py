"""``Predictor``: a FineCLIPER checkpoint applied to any video, per face track and time window.

1. pass 1 (``video.scan_video``): decode every frame, detect every face; ``video.face_tracks`` gives
   the largest face (default) or every face with a persistent id (``all_faces``);
2. per track: the box is smoothed (``face.crop.smooth_boxes``) and the span cut into windows
   (``windows.plan_windows``);
3. pass 2: decode again, crop each track's S_c x S_c square (S_c = ``crop.out_size``, 224 as the
   datasets' face crops) for the sampled frames; when the variant needs face maps or descriptions
   (or ``describe``/``explain`` is asked), the face-mesh analyser runs on every crop of the span in
   video mode, one analyser per track (its landmark tracking must not jump between faces);
4. per window the inputs are built exactly as the test-time dataset builds them (crops resized to the
   model's image size by ``eval_geom``, maps by ``render_clip_maps``, descriptions by the landmark
   describer, tokenised to ``desc_context_length``), the model runs in batches, and a track's overall
   probabilities are the mean of its windows' probabilities.
"""
from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from finecliper.clip.tokenizer import truncate_to_longest
from finecliper.device import autocast, resolve_device
from finecliper.face.crop import CropConfig, CropTrack, crop_frames, smooth_boxes
from finecliper.face.facemesh import FaceMeshAnalyser, FaceMeshConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.predict.video import TrackBoxes, VideoInfo, face_tracks, iter_frames, scan_video
from finecliper.predict.windows import Window, plan_windows


class UntrainedClassesWarning(UserWarning):
    """Class names the checkpoint was not trained on (open-vocabulary scoring)."""


@dataclass
class PredictConfig:
    all_faces: bool = False        # every face gets a track (default: the largest face only)
    window_s: float = 3.0          # window length in seconds (a span no longer than this is one window)
    stride_s: float = 1.5          # window stride in seconds
    min_track_s: float = 0.5       # --all-faces: tracks seen for less are dropped (spurious detections)
    link_gap_s: float = 1.0        # a face lost for up to this long keeps its track id
    describe: bool = False         # add the landmark describer's text per track and window
    explain: str | None = None     # folder for per-window gradient x input PNGs
    batch_size: int = 8            # windows per model call
    device: str = "auto"           # auto | cpu | cuda | cuda:N
    precision: str = "auto"        # auto (bf16 autocast on CUDA) | fp32 | bf16
    default_fps: float = 25.0      # for frame folders and files without a rate
    detect_size: int = 640         # frames are shrunk to this longer side for face detection (0: full size)
    chunk: int = 64                # crops per analyser call
    crop: CropConfig = field(default_factory=CropConfig)
    facemesh: FaceMeshConfig = field(default_factory=FaceMeshConfig)


@dataclass
class WindowResult:
    index: int
    start_frame: int
    end_frame: int             # exclusive
    start_s: float
    end_s: float
    frames: list[int]          # sampled frame indices
    label: str
    probs: list[float]         # (K,) in ``VideoResult.classes`` order
    weights: dict[str, float]  # fusion weight per modality
    n_valid: int               # sampled frames where the face was detected
    box: list[float] | None    # mean detected box (x0, y0, x1, y1) over the window, frame pixels
    description: str | None = None
    explanation: str | None = None        # PNG path
    regions: dict[str, float] | None = None  # share of the attribution per face region


@dataclass
class TrackResult:
    track_id: int
    first_frame: int
    last_frame: int
    start_s: float
    end_s: float
    label: str
    probs: list[float]
    face_valid: np.ndarray     # (N,) bool over the whole video: this face detected in the frame
    boxes: np.ndarray          # (N, 4) float32 detected boxes (zeros where not found)
    windows: list[WindowResult]
    description: str | None = None


@dataclass
class VideoResult:
    video: str
    fps: float
    num_frames: int
    frame_size: tuple[int, int]  # (H, W)
    classes: list[str]
    tracks: list[TrackResult]
    variant: str
    message: str | None = None   # e.g. why there is no track
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


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
class _TrackData:
    """Pass-2 products of one track."""
    boxes: TrackBoxes
    crop: CropTrack
    windows: list[Window]
    crops: dict[int, np.ndarray] = field(default_factory=dict)     # sampled frame -> (Sc, Sc, 3) uint8
    parsing: dict[int, np.ndarray] = field(default_factory=dict)   # sampled frame -> (P, P) uint8 LaPa ids
    landmarks: np.ndarray | None = None  # (N, 68, 2) crop pixels (analysed frames only)
    mesh_valid: np.ndarray | None = None  # (N,) bool, the analyser found the face in the crop


class Predictor:
    def __init__(self, model, cfg: PredictConfig | None = None, classes: list[str] | None = None):
        self.cfg = cfg or PredictConfig()
        self.device = resolve_device(self.cfg.device)
        self.model = model.eval().to(self.device)
        self.image_size = int(model.clip.config.vision_config.image_size)
        self.num_frames = int(model.cfg.num_frames)
        self.trained_classes = list(model.cfg.classes)
        self.classes = list(self.trained_classes)
        self.warnings: list[str] = []
        self._detector = None
        if self.cfg.crop.out_size < 32:
            raise ValueError(f"crop.out_size must be at least 32 px (the face analyser runs on the crops), "
                             f"got {self.cfg.crop.out_size}")
        if classes:
            self.set_classes(classes)

    @classmethod
    def from_checkpoint(cls, directory, clip=None, longclip=None, cfg: PredictConfig | None = None,
                        classes: list[str] | None = None) -> "Predictor":
        return cls(FineCLIPER.from_pretrained(directory, clip=clip, longclip=longclip), cfg, classes)

    # ---------------------------------------------------------------- classes
    def set_classes(self, classes: list[str]) -> list[str]:
        """Score against PN prompts of any class words (through the trained text adapters).

        Returns the words the checkpoint was not trained on, and warns about them.
        """
        classes = [c.strip() for c in classes if c and c.strip()]
        if len(classes) < 2:
            raise ValueError(f"--classes needs at least two class names, got {classes}")
        dup = sorted({c for c in classes if classes.count(c) > 1})
        if dup:
            raise ValueError(f"--classes names {dup} more than once")
        self.model.set_classes(classes)
        self.classes = classes
        trained = {c.lower() for c in self.trained_classes}
        untrained = [c for c in classes if c.lower() not in trained]
        self.warnings = []
        if untrained:
            msg = (f"open-vocabulary classes: {', '.join(untrained)} were NOT trained (this checkpoint knows "
                   f"{', '.join(self.trained_classes)}); their scores come from the trained text path on the prompts "
                   f"'{self.model.cfg.pos_template.format(untrained[0])}' / "
                   f"'{self.model.cfg.neg_template.format(untrained[0])}' and are not calibrated")
            self.warnings.append(msg)
            warnings.warn(msg, UntrainedClassesWarning, stacklevel=2)
        return untrained

    # ---------------------------------------------------------------- what the variant needs
    @property
    def needs_maps(self) -> bool:
        return "parsing" in self.model.modalities

    @property
    def needs_description(self) -> bool:
        return "description" in self.model.modalities

    @property
    def needs_analysis(self) -> bool:
        return self.needs_maps or self.needs_description or self.cfg.describe or bool(self.cfg.explain)

    @property
    def detector(self):
        if self._detector is None:
            from finecliper.face.crop import FaceDetector

            self._detector = FaceDetector(self.cfg.crop.detector_model, self.cfg.crop.min_detection_confidence)
        return self._detector

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    # ---------------------------------------------------------------- the run
    def predict(self, path: str | Path) -> VideoResult:
        """Every face track of one video; raises ``FrameError`` naming the file when it cannot be decoded."""
        path = Path(path)
        timer = _Timer()
        scan = scan_video(path, self.detector, self.cfg.default_fps, self.cfg.detect_size)
        timer.seconds.update(scan.seconds)
        info = scan.info
        result = VideoResult(str(path), info.fps, info.num_frames, info.frame_hw, list(self.classes), [],
                             self.model.cfg.variant, warnings=list(self.warnings))
        if not info.fps_from_file:
            result.warnings.append(f"{path}: no frame rate in the file; times assume {info.fps:g} fps")
        with timer("track"):
            tracks = face_tracks(scan.detections, info.fps, all_faces=self.cfg.all_faces,
                                 min_track_s=self.cfg.min_track_s, link_gap_s=self.cfg.link_gap_s)
        if not tracks:
            result.message = f"no face found in {path} ({info.num_frames} frames): nothing to predict"
            result.seconds = timer.seconds
            return result
        with timer("track"):
            data = [_TrackData(t, smooth_boxes(t.boxes, t.found, info.frame_hw, self.cfg.crop),
                               plan_windows(t.first, t.last, info.fps, self.num_frames, self.cfg.window_s,
                                            self.cfg.stride_s)) for t in tracks]
        self._gather(path, info, data, timer)
        jobs = [(j, k) for j, d in enumerate(data) for k in range(len(d.windows))]
        probs = np.zeros((len(jobs), len(self.classes)), np.float32)
        weights = np.zeros((len(jobs), len(self.model.modalities)), np.float32)
        descriptions: list[str | None] = [None] * len(jobs)
        bs = max(1, self.cfg.batch_size)
        for b0 in range(0, len(jobs), bs):
            with timer("inputs"):
                items = [self._inputs(data[j], data[j].windows[k], info.fps) for j, k in jobs[b0:b0 + bs]]
                for i, (_, text) in enumerate(items):
                    descriptions[b0 + i] = text
                batch = {key: torch.stack([it[0][key] for it in items]) for key in items[0][0]}
                if "description_tokens" in batch:  # padding past the longest text changes nothing but the cost
                    batch["description_tokens"] = truncate_to_longest(batch["description_tokens"])
                batch = {key: v.to(self.device) for key, v in batch.items()}
            with timer("model"), torch.no_grad(), autocast(self.device, self.cfg.precision):
                out = self.model(batch)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
            probs[b0:b0 + len(items)] = torch.softmax(out.logits.float(), -1).cpu().numpy()
            weights[b0:b0 + len(items)] = out.weights.float().cpu().numpy()
        windows_out: dict[int, list[WindowResult]] = {j: [] for j in range(len(data))}
        for n, (j, k) in enumerate(jobs):
            w, d = data[j].windows[k], data[j]
            found = d.boxes.found[w.start:w.end]
            box = d.boxes.boxes[w.start:w.end][found].mean(0).round(1).tolist() if found.any() else None
            p = probs[n]
            windows_out[j].append(WindowResult(
                k, w.start, w.end, round(w.start_s, 3), round(w.end_s, 3), list(w.indices), self.classes[int(p.argmax())],
                p.tolist(), dict(zip(self.model.modalities, weights[n].tolist())),
                int(d.boxes.found[list(w.indices)].sum()), box,
                description=descriptions[n] if (self.cfg.describe or self.needs_description) else None))
        if self.cfg.explain:
            with timer("explain"):
                self._explain(path, data, windows_out, info.fps)
        for j, d in enumerate(data):
            t = d.boxes
            mean = np.mean([w.probs for w in windows_out[j]], axis=0)
            desc = None
            if self.cfg.describe:
                desc = self._describe(d, t.first, t.last + 1, info.fps)
            result.tracks.append(TrackResult(
                t.track_id, t.first, t.last, round(t.first / info.fps, 3), round((t.last + 1) / info.fps, 3),
                self.classes[int(mean.argmax())], mean.tolist(), t.found.copy(), t.boxes.copy(), windows_out[j], desc))
        result.seconds = timer.seconds
        return result

    # ---------------------------------------------------------------- pass 2
    def _gather(self, path: Path, info: VideoInfo, data: list[_TrackData], timer: _Timer) -> None:
        """Decode again; keep each track's crops of its sampled frames, analyse every crop of its span."""
        from finecliper.data.frames import FrameError

        analyse = self.needs_analysis
        n = info.num_frames
        sampled = [set(i for w in d.windows for i in w.indices) for d in data]
        analysers: list[Any] = [None] * len(data)
        buffers: list[list[tuple[int, np.ndarray]]] = [[] for _ in data]
        if analyse:
            for d in data:
                d.landmarks = np.zeros((n, 68, 2), np.float32)
                d.mesh_valid = np.zeros(n, bool)
        end = max((d.boxes.last if analyse else max(s)) for d, s in zip(data, sampled)) + 1

        def flush(j: int) -> None:
            buf = buffers[j]
            if not buf:
                return
            d = data[j]
            if analysers[j] is None:
                analysers[j] = FaceMeshAnalyser(self.cfg.facemesh)
                reset = True
            else:
                reset = False
            idx = [i for i, _ in buf]
            with timer("analyse"):
                ft = analysers[j].analyse(np.stack([c for _, c in buf]), video=True, reset=reset)
            d.landmarks[idx], d.mesh_valid[idx] = ft.landmarks68, ft.valid
            for r, i in enumerate(idx):
                if i in sampled[j]:
                    d.parsing[i] = ft.parsing[r]
            buffers[j] = []

        def wanted(i: int) -> bool:
            return any((analyse and d.boxes.first <= i <= d.boxes.last) or i in sampled[j] for j, d in enumerate(data))

        frames = iter_frames(path, wanted)
        try:
            for i in range(end):
                with timer("decode"):
                    frame = next(frames, False)
                if frame is False:
                    break
                if frame is None:  # decoded, not needed
                    continue
                with timer("crop"):
                    for j, d in enumerate(data):
                        in_span = analyse and d.boxes.first <= i <= d.boxes.last
                        if not (in_span or i in sampled[j]):
                            continue
                        c = crop_frames(frame[None], d.crop, offset=i)[0]  # (Sc, Sc, 3)
                        if i in sampled[j]:
                            d.crops[i] = c
                        if in_span:
                            buffers[j].append((i, c))
                for j, d in enumerate(data):
                    if buffers[j] and (len(buffers[j]) >= self.cfg.chunk or i == d.boxes.last):
                        flush(j)
        finally:
            frames.close()
            for a in analysers:
                if a is not None:
                    a.close()
        for j, d in enumerate(data):
            missing = sampled[j] - d.crops.keys()
            if missing:
                raise FrameError(f"{path}: frame {min(missing)} was decoded in the first pass but not the second; "
                                   f"the file decodes differently each time")

    # ---------------------------------------------------------------- model inputs
    def _describe(self, d: _TrackData, start: int, end: int, fps: float) -> str:
        from finecliper.text.landmark_describer import describe_landmarks

        return describe_landmarks(d.landmarks[start:end], d.mesh_valid[start:end], fps=fps).text

    def _inputs(self, d: _TrackData, w: Window, fps: float) -> tuple[dict[str, torch.Tensor], str | None]:
        """One window's model inputs (no batch axis) and its description text (or None)."""
        from finecliper.data.augment import apply_frames, eval_geom, normalize_clip

        sc = self.cfg.crop.out_size
        geom = eval_geom(sc, sc, self.image_size)
        idx = list(w.indices)
        crops = np.stack([d.crops[i] for i in idx])                        # (T, Sc, Sc, 3) uint8
        item = {"frames": normalize_clip(apply_frames(crops, geom))}       # (T, 3, S, S)
        if self.needs_maps:
            from finecliper.face.backend import FaceTrack
            from finecliper.face.maps_extra import render_clip_maps

            t = len(idx)
            ft = FaceTrack(landmarks68=d.landmarks[idx], parsing=np.stack([d.parsing[i] for i in idx]),
                           boxes=np.zeros((t, 4), np.float32), valid=d.mesh_valid[idx].copy(),
                           confidence=np.zeros(t, np.float32), n_faces=np.zeros(t, np.int16),
                           reasons=np.zeros(t, np.uint8), frame_hw=(sc, sc))
            parsing, marks, valid = render_clip_maps(ft, geom, (sc, sc))
            item["parsing_maps"] = normalize_clip(parsing)                 # (T, 3, S, S)
            item["landmark_maps"] = normalize_clip(marks)                  # (T, 3, S, S)
            item["face_valid"] = torch.from_numpy(valid)                   # (T,) bool
        text = None
        if self.needs_description or self.cfg.describe:
            text = self._describe(d, w.start, w.end, fps)
        if self.needs_description:
            tok = self.model.tokenize_description([text], context_length=self.model.cfg.desc_context_length)
            item["description_tokens"] = tok[0]                            # (L,) long
        return item, text

    # ---------------------------------------------------------------- explanations
    def _explain(self, path: Path, data: list[_TrackData], windows_out: dict[int, list[WindowResult]], fps: float) -> None:
        from finecliper.data.augment import apply_image, eval_geom
        from finecliper.predict.explain import denormalize, grad_times_input, heatmap_grid, region_shares, write_png

        out_dir = Path(self.cfg.explain)
        sc = self.cfg.crop.out_size
        geom = eval_geom(sc, sc, self.image_size)
        for j, d in enumerate(data):
            for w, wr in zip(d.windows, windows_out[j]):
                item, _ = self._inputs(d, w, fps)
                batch = {k: v[None].to(self.device) for k, v in item.items()}
                target = self.classes.index(wr.label)
                attr = grad_times_input(self.model, batch, target).numpy()   # (T, S, S)
                idx = list(w.indices)
                if all(i in d.parsing for i in idx):
                    labels = np.stack([apply_image(d.parsing[i], geom, "nearest") for i in idx])
                    wr.regions = {k: round(v, 4) for k, v in region_shares(attr, labels, d.mesh_valid[idx]).items()}
                top = np.argsort(wr.probs)[::-1][:3]
                title = [f"{path.name}  track {d.boxes.track_id}  {w.start_s:.2f}-{w.end_s:.2f} s",
                         f"predicted {wr.label}: " + ", ".join(f"{self.classes[c]} {wr.probs[c]:.2f}" for c in top),
                         "heat: |grad x input| of the predicted class"]
                if wr.regions:
                    title.append("  ".join(f"{k} {100 * v:.0f}%" for k, v in
                                           sorted(wr.regions.items(), key=lambda kv: -kv[1]) if v >= 0.01))
                png = out_dir / f"{path.stem}_track{d.boxes.track_id}_window{wr.index:03d}.png"
                write_png(png, heatmap_grid(denormalize(item["frames"]), attr, title))
                wr.explanation = str(png)


def predict_videos(predictor: Predictor, paths: list[str | Path]) -> Iterator[tuple[Path, VideoResult | None, str | None]]:
    """(path, result, error message) per video; one unreadable file does not stop the others."""
    from finecliper.data.frames import FrameError

    for p in paths:
        try:
            yield Path(p), predictor.predict(p), None
        except (FrameError, OSError, ValueError) as e:
            msg = str(e)
            if str(p) not in msg:
                msg = f"{p}: {msg}"
            yield Path(p), None, msg
