"""``finecliper evaluate``: score a checkpoint on a test split (one fold or all), with reports."""
from __future__ import annotations

from finecliper.baselines import BASELINES  # a light module: names only
from finecliper.cli import UsageError, add_folds, add_overrides, examples, parse_folds

HELP = "Evaluate a checkpoint (or a static baseline: --baseline fer) on DFEW/FERV39k/MAFW test folds: UAR, WAR, per-class table, confusion matrices."


def add_arguments(p) -> None:
    p.add_argument("--checkpoint",
                   help="checkpoint directory; '{fold}' in it is replaced per fold (e.g. runs/x/fold_{fold}/best)")
    p.add_argument("--baseline", choices=sorted(BASELINES),
                   help="score a static per-frame baseline instead of a checkpoint (same clips, metrics and reports; "
                        "faces from face_cache=DIR, else the face mesh)")
    p.add_argument("--baseline-mode", choices=["mean", "vote"], default="mean",
                   help="how a baseline's frame predictions make the clip's: mean probability or majority vote")
    p.add_argument("--config", help="a shipped config (dfew, ferv39k, mafw) or a YAML file giving data.* (and face_cache/descriptions)")
    add_folds(p, "data.fold")
    p.add_argument("--out", default=None, help="report folder (default: <checkpoint>/eval)")
    p.add_argument("--clip", help="frozen CLIP checkpoint (default: the path recorded in the checkpoint)")
    p.add_argument("--longclip", help="frozen Long-CLIP checkpoint (default: the recorded path)")
    p.add_argument("--zero-shot", action="store_true",
                   help="score with PN prompts of the target dataset's classes (cross-dataset / caption-trained models)")
    p.add_argument("--zero-shot-init", action="store_true",
                   help="score FineCLIPER at initialisation instead of a checkpoint: CLIP zero-shot PN scoring of the "
                        "dataset's classes on --clip (with --longclip the description path joins, as in the dagger "
                        "variant); needs --out")
    add_overrides(p, "evaluate", "data.root=DIR data.annotations=DIR")
    examples(p, "finecliper evaluate --checkpoint 'runs/dfew/fold_{fold}/best' --config dfew --folds all "
                "data.root=DFEW data.annotations=DFEW",
             "finecliper evaluate --baseline fer --config dfew --folds all face_cache=runs/faces/dfew "
             "data.root=DFEW data.annotations=DFEW --out runs/fer_dfew",
             "finecliper evaluate --zero-shot-init --clip ViT-B-16.pt --config mafw --folds 1 "
             "data.root=MAFW data.annotations=MAFW --out runs/zs_mafw")


def run(args) -> int:
    # heavy modules (torch, transformers) load here, not at `finecliper --help`
    from pathlib import Path

    from rich.console import Console

    from finecliper.config import load_config
    from finecliper.data.labels import classes
    from finecliper.eval.metrics import summarize_folds
    from finecliper.io import write_json
    from finecliper.predict.scorers import zero_shot_model
    from finecliper.train.config import ExperimentConfig
    from finecliper.train.evaluation import evaluate_checkpoint, evaluate_model

    cfg = load_config(ExperimentConfig, args.config, args.overrides)
    folds = parse_folds(args.folds, cfg.data.dataset, cfg.data.fold)
    console = Console()
    given = [f for f, v in (("--checkpoint", args.checkpoint), ("--baseline", args.baseline),
                            ("--zero-shot-init", args.zero_shot_init)) if v]
    if len(given) > 1:
        raise UsageError(f"finecliper evaluate: give one of --checkpoint, --baseline, --zero-shot-init, not {' and '.join(given)}")
    if args.baseline:
        from finecliper.baselines.evaluate import evaluate_baseline_folds

        evaluate_baseline_folds(args.baseline, cfg.data, cfg.face_cache, folds, args.out, args.baseline_mode, console.print)
        return 0
    if args.zero_shot_init:  # FineCLIPER at initialisation (plain CLIP PN scoring) on each fold, like any checkpoint
        if not args.clip or not args.out:
            raise UsageError("finecliper evaluate --zero-shot-init needs --clip PATH (the frozen CLIP) and --out DIR")
        model = zero_shot_model(args.clip, args.longclip, classes(cfg.data.dataset), cfg.model.num_frames,
                                cfg.model.allow_pickle)
        record = {"model": "FineCLIPER at initialisation (CLIP zero-shot PN scoring)", "clip": str(args.clip),
                  "longclip": str(args.longclip) if args.longclip else None, "zero_shot": True}

        def score(k, out):
            return evaluate_model(cfg, model, k, out, record)
    else:
        if not args.checkpoint:
            raise UsageError("finecliper evaluate: --checkpoint is required (or --baseline NAME, or --zero-shot-init)")

        def score(k, out):
            return evaluate_checkpoint(cfg, Path(args.checkpoint.replace("{fold}", str(k))), k, out, clip=args.clip,
                                       longclip=args.longclip, zero_shot=args.zero_shot)
    results = []
    for k in folds:
        out = Path(args.out.replace("{fold}", str(k))) if args.out else Path(args.checkpoint.replace("{fold}", str(k))) / "eval"
        if len(folds) > 1 and args.out and "{fold}" not in args.out:
            out = out / f"fold_{k}"
        r = score(k, out)
        results.append(r)
        console.print(f"fold {k}: UAR {100 * r['uar']:.2f}  WAR {100 * r['war']:.2f}  ({r['n']} clips) -> {out}")
    if len(results) > 1:
        summary = summarize_folds(results)
        console.print(f"[bold]mean over {len(results)} folds[/]: UAR {100 * summary['uar']['mean']:.2f} ± "
                      f"{100 * summary['uar']['std']:.2f}  WAR {100 * summary['war']['mean']:.2f} ± "
                      f"{100 * summary['war']['std']:.2f}")
        if args.out:
            write_json(Path(args.out.replace("{fold}", "all")) / "summary.json", {"per_fold": results, **summary})
    return 0
