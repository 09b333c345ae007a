"""An ablation table in the paper's layout (Markdown, CSV, JSON) with the paper's numbers beside ours,
and Fig. 7's view of it: trainable parameters against UAR, row by row."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

from finecliper.ablation.run import RowPlan
from finecliper.ablation.tables import Table
from finecliper.eval.report import markdown_table, save_figure, write_text
from finecliper.io import write_json

PAPER = "arXiv 2407.02157 (FineCLIPER, ACM MM'24)"


def _pct(stats: dict[str, Any] | None) -> str:
    """'62.81 ± 1.20' from a fold summary's {'mean', 'std'} (fractions); '—' when not run."""
    if not stats:
        return "—"
    s = f"{100 * stats['mean']:.2f}"
    return s + (f" ± {100 * stats['std']:.2f}" if stats.get("n_folds", 1) > 1 else "")


def row_record(p: RowPlan, dataset: str) -> dict[str, Any]:
    """Everything known about one row: what it is, its parameters, our scores and the paper's."""
    paper = p.row.paper.get(dataset)
    return {
        "key": p.row.key, "cells": list(p.row.cells), "meaning": p.row.meaning, "note": p.row.note,
        "extra": p.row.extra, "backbone": p.row.backbone, "overrides": list(p.row.overrides),
        "folder": str(p.folder), "finished": p.finished, "params": p.params,
        "ours": None if not p.summary else {tag: {m: p.summary[tag][m] for m in ("uar", "war")} for tag in ("best", "last")},
        "paper": None if paper is None else {"uar": paper[0], "war": paper[1], "source": PAPER},
        "paper_all_datasets": {k: {"uar": v[0], "war": v[1]} for k, v in p.row.paper.items()},
        "paper_params_m": p.row.paper_params_m,
    }


def table_rows(table: Table, records: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = [*table.columns, "Trainable params", "UAR (ours, best)", "WAR (ours, best)", "UAR (ours, last)",
              "WAR (ours, last)", "UAR (paper)", "WAR (paper)", "Params (paper)"]
    rows = []
    for r in records:
        ours, paper = r["ours"] or {}, r["paper"]
        rows.append([*r["cells"], f"{r['params']['trainable']:,}" if r["params"] else "—",
                     _pct((ours.get("best") or {}).get("uar")), _pct((ours.get("best") or {}).get("war")),
                     _pct((ours.get("last") or {}).get("uar")), _pct((ours.get("last") or {}).get("war")),
                     f"{paper['uar']:.2f}" if paper else "—", f"{paper['war']:.2f}" if paper else "—",
                     f"{r['paper_params_m']:g}M" if r["paper_params_m"] else "—"])
    return header, rows


def markdown(table: Table, records: Sequence[dict[str, Any]], dataset: str, folds: Sequence[int]) -> str:
    header, rows = table_rows(table, records)
    lines = [f"# {table.title}", "",
             f"Dataset **{dataset}**, folds {', '.join(map(str, folds))}. *Ours*: mean ± std over folds of the "
             f"best-on-test epoch (the DFER convention, selected on the test fold, so optimistic) and of the last "
             f"epoch. *Paper*: the numbers published in {PAPER}, copied, not reproduced.", "",
             markdown_table(header, rows).rstrip(), ""]
    notes = [f"- **{r['key']}**: {r['meaning']}" + (f" *Note:* {r['note']}" if r["note"] else "") for r in records]
    lines += ["Rows:", "", *notes]
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines) + "\n"


def write_table(out: Path, table: Table, plans: Sequence[RowPlan], dataset: str, folds: Sequence[int]) -> list[Path]:
    """table.md, table.csv, table.json and fig7_params_vs_uar.png under ``out``."""
    records = [row_record(p, dataset) for p in plans]
    header, rows = table_rows(table, records)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    paths = [write_text(out / "table.md", markdown(table, records, dataset, folds)),
             write_text(out / "table.csv", buf.getvalue())]
    write_json(out / "table.json", {"table": table.key, "title": table.title, "dataset": dataset, "folds": list(folds),
                                    "columns": list(table.columns), "note": table.note, "paper_source": PAPER,
                                    "rows": records})
    paths.append(out / "table.json")
    if any(r["ours"] and r["params"] for r in records):
        paths.append(plot_params_vs_uar(out / "fig7_params_vs_uar.png", table, records, dataset))
    return paths


def plot_params_vs_uar(path: Path, table: Table, records: Sequence[dict[str, Any]], dataset: str) -> Path:
    """Fig. 7's axes: trainable parameters (M) against UAR (%), ours filled, the paper's hollow where it states both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in records:
        if r["ours"] and r["params"]:
            x, y = r["params"]["trainable"] / 1e6, 100 * r["ours"]["best"]["uar"]["mean"]
            ax.scatter([x], [y], color="tab:blue", zorder=3)
            ax.annotate(r["key"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if r["paper"] and r["paper_params_m"]:
            ax.scatter([r["paper_params_m"]], [r["paper"]["uar"]], facecolors="none", edgecolors="tab:red", zorder=3)
    ax.scatter([], [], color="tab:blue", label="ours (best-on-test UAR, mean over folds)")
    ax.scatter([], [], facecolors="none", edgecolors="tab:red", label="paper (as published)")
    ax.set_xlabel("trainable parameters (M)")
    ax.set_ylabel(f"UAR on {dataset} (%)")
    ax.set_title(f"{table.title.split(':')[0]}: parameters vs performance", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
