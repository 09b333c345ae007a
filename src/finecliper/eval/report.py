"""Report writers: confusion matrices (CSV, PNG), the paper's Table 2 layout (CSV, markdown),
JSON summaries and learning curves. Every file is written atomically."""
from __future__ import annotations

import csv
import io
import math
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from finecliper.data import labels as L
from finecliper.eval.metrics import per_class_recall, uar, war
from finecliper.io import atomic_write, write_json

__all__ = ["write_confusion_csv", "plot_confusion", "per_class_rows", "write_per_class_table",
           "markdown_table", "write_summary_json", "plot_learning_curve", "write_fold_report", "save_figure",
           "write_text", "class_similarity", "plot_class_similarity", "write_class_similarity"]


def save_figure(fig, path: str | Path) -> Path:
    """A matplotlib figure as PNG, written atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """A text file, written atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def write_confusion_csv(path: str | Path, cm: np.ndarray, class_names: Sequence[str]) -> Path:
    """Rows = true class, columns = predicted; first row/column hold the class names."""
    cm = np.asarray(cm)
    if cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix {cm.shape} does not fit {len(class_names)} class names")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true\\pred", *class_names])
    for name, row in zip(class_names, cm):
        w.writerow([name, *(int(x) for x in row)])
    return write_text(path, buf.getvalue())


def plot_confusion(path: str | Path, cm: np.ndarray, class_names: Sequence[str], title: str = "") -> Path:
    """Heat map of row-normalised %, each cell annotated with count and %."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.int64)
    k = len(class_names)
    rows = cm.sum(axis=1, keepdims=True)
    pct = np.divide(cm * 100.0, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * k, 1.0 + 0.75 * k))
    im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]}\n{pct[i, j]:.1f}%", ha="center", va="center", fontsize=7,
                    color="white" if pct[i, j] > 50 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="% of true class")
    if title:
        ax.set_title("\n".join(textwrap.wrap(title, 55)), fontsize=9)
    return save_figure(fig, path)


def per_class_rows(results: dict[str, np.ndarray], dataset: str) -> tuple[list[str], list[list[Any]]]:
    """Table 2 layout: {method: confusion matrix} -> (header, rows of % values, 2 decimals).

    Columns: Method, Hap. Sad. Neu. Ang. Sur. Dis. Fea. [Con. Anx. Hel. Disa.], UAR, WAR.
    A class with no test clip shows as '-'.
    """
    names = L.classes(dataset)
    header = ["Method", *L.short_names(dataset), "UAR", "WAR"]
    rows = []
    for method, cm in results.items():
        cm = np.asarray(cm)
        if cm.shape != (len(names), len(names)):
            raise ValueError(f"{method}: confusion matrix {cm.shape} does not fit {dataset}'s {len(names)} classes")
        rec = per_class_recall(cm)
        cells = ["-" if math.isnan(r) else round(100 * float(r), 2) for r in rec]
        rows.append([method, *cells, round(100 * uar(cm), 2), round(100 * war(cm), 2)])
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(x: Any) -> str:
        return f"{x:.2f}" if isinstance(x, float) else str(x)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(fmt(x) for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_per_class_table(out_stem: str | Path, results: dict[str, np.ndarray], dataset: str) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` in the paper's Table 2 layout."""
    header, rows = per_class_rows(results, dataset)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([f"{x:.2f}" if isinstance(x, float) else x for x in r])
    stem = Path(out_stem)
    return (write_text(stem.with_suffix(".csv"), buf.getvalue()),
            write_text(stem.with_suffix(".md"), markdown_table(header, rows)))


def write_summary_json(path: str | Path, summary: dict[str, Any]) -> Path:
    write_json(path, summary)
    return Path(path)


def curve_panel(key: str) -> str:
    """The panel a per-epoch number is drawn in: quantities of one unit share an axis, others get their own."""
    if "loss" in key:
        return "loss"
    if key.endswith(("uar", "war")):
        return "scores (%)"
    if key == "lr":
        return "learning rate"
    return key  # seconds, steps, ...: each its own axis


def plot_learning_curve(path: str | Path, history: Sequence[dict[str, Any]], title: str = "") -> Path:
    """Per-epoch dicts -> PNG, one panel per kind of number (``curve_panel``): losses together, UAR/WAR
    together in %, the learning rate on a log axis, anything else (seconds, steps) alone. The x axis is
    ``epoch`` when present, else the position."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("learning curve needs at least one epoch")
    xs = [h.get("epoch", i) for i, h in enumerate(history)]
    keys: list[str] = []
    for h in history:
        keys += [k for k, v in h.items() if k not in keys and k != "epoch" and isinstance(v, (int, float))]
    panels: dict[str, list[str]] = {}
    for k in keys:
        panels.setdefault(curve_panel(k), []).append(k)
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (name, members) in zip(axes.flat, panels.items()):
        scale = 100.0 if name == "scores (%)" else 1.0
        for k in members:
            pts = [(x, h[k]) for x, h in zip(xs, history) if isinstance(h.get(k), (int, float))]
            ax.plot([p[0] for p in pts], [scale * p[1] for p in pts], marker="o", ms=3, label=k)
        if name == "learning rate":
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        if len(members) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def write_fold_report(out_dir: str | Path, name: str, cm: np.ndarray, dataset: str,
                      extra: dict[str, Any] | None = None, title: str | None = None) -> dict[str, Any]:
    """Confusion CSV + PNG, Table 2 row (CSV + md) and JSON summary for one evaluation. ``title`` heads
    the confusion picture (say which model, data and epoch; default: ``name``)."""
    out = Path(out_dir)
    names = L.classes(dataset)
    cm = np.asarray(cm)
    write_confusion_csv(out / f"{name}_confusion.csv", cm, names)
    plot_confusion(out / f"{name}_confusion.png", cm, names, title=title or name)
    write_per_class_table(out / f"{name}_per_class", {name: cm}, dataset)
    rec = per_class_recall(cm)
    summary = {"name": name, "dataset": dataset, "uar": uar(cm), "war": war(cm), "n": int(cm.sum()),
               "per_class_recall": {c: (None if math.isnan(r) else float(r)) for c, r in zip(names, rec)},
               "confusion": cm.tolist(), **(extra or {})}
    write_summary_json(out / f"{name}_summary.json", summary)
    return summary


# --------------------------------------------------------------------------- Fig. 5
def class_similarity(features: np.ndarray, labels: np.ndarray, text_pos: np.ndarray,
                     text_neg: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per class c: the mean, over the clips of class c, of cos(F, T_p^c) and cos(F, T_n^c) (paper Fig. 5).

    features (N, E), text_pos / text_neg (K, E), all L2-normalised; labels (N,). Returns ``pos``, ``neg``
    (K,) (``neg`` all NaN without negative prompts) and ``n`` (K,) clips per class; NaN for a class with none.
    """
    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    k = len(text_pos)
    pos, neg, n = np.full(k, np.nan), np.full(k, np.nan), np.zeros(k, dtype=np.int64)
    for c in range(k):
        rows = features[labels == c]  # (N_c, E)
        n[c] = len(rows)
        if len(rows):
            pos[c] = float((rows @ np.asarray(text_pos[c], dtype=np.float64)).mean())
            if text_neg is not None:
                neg[c] = float((rows @ np.asarray(text_neg[c], dtype=np.float64)).mean())
    return {"pos": pos, "neg": neg, "n": n}


def plot_class_similarity(path: str | Path, sim: dict[str, np.ndarray], class_names: Sequence[str], title: str = "") -> Path:
    """Fig. 5: per class, bars of the mean similarity to its positive (green) and negative (red) prompt."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(class_names)
    x = np.arange(k)
    has_neg = not np.all(np.isnan(sim["neg"]))
    width = 0.38 if has_neg else 0.6
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * k, 3.8))
    ax.bar(x - (width / 2 if has_neg else 0), np.nan_to_num(sim["pos"]), width, color="tab:green", label="positive prompt")
    if has_neg:
        ax.bar(x + width / 2, np.nan_to_num(sim["neg"]), width, color="tab:red", label="negative prompt")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(x, class_names, rotation=30, ha="right")
    ax.set_ylabel("mean cosine similarity")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def write_class_similarity(out_stem: str | Path, sim: dict[str, np.ndarray], class_names: Sequence[str],
                           title: str = "") -> tuple[Path, Path]:
    """``<stem>.csv`` (class, clips, positive, negative) and ``<stem>.png`` (the bars)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "clips", "cos_positive", "cos_negative"])
    for name, n, p, q in zip(class_names, sim["n"], sim["pos"], sim["neg"]):
        w.writerow([name, int(n), "" if math.isnan(p) else f"{p:.5f}", "" if math.isnan(q) else f"{q:.5f}"])
    stem = Path(out_stem)
    return (write_text(stem.with_suffix(".csv"), buf.getvalue()),
            plot_class_similarity(stem.with_suffix(".png"), sim, class_names, title))
