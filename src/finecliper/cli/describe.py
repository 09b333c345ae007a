"""`finecliper describe`: fine-grained descriptions of facial changes, refined and cached per clip."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from finecliper.cli import add_folds, examples, parse_folds, print_error

HELP = "Describe the facial changes of every clip (landmarks | video-llava | captions) into a resumable JSONL cache."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", required=True, choices=("landmarks", "video-llava", "captions"),
                   help="landmarks: label-free, from a face cache; video-llava: an MLLM on 8 face frames; "
                        "captions: MAFW's own English captions")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="manifest JSON written by `finecliper prepare` (all its clips)")
    src.add_argument("--dataset", help="dfew | ferv39k | mafw, read from split files (with --annotations)")
    src.add_argument("--clips", help="a plain folder of clips (video files and/or folders of frames, searched "
                                     "recursively, as `finecliper extract --clips`); no labels")
    p.add_argument("--annotations", help="with --dataset: folder holding the split files")
    add_folds(p, "all; with --dataset")
    p.add_argument("--split", default="all", choices=("train", "test", "all"), help="with --dataset (default all)")
    p.add_argument("--data-root", help="dataset folder holding the clips (video-llava; overrides the manifest's)")
    p.add_argument("--variant", default="", help="with --dataset --data-root: frame variant folder under the root")
    p.add_argument("--face-cache", help="landmarks: face cache folder from `finecliper extract`")
    p.add_argument("--fps", type=float, help="landmarks: frame rate of clips that are frame folders (videos use "
                                            "their own), for times in seconds")
    p.add_argument("--model", help="video-llava: HF model folder (e.g. a download of LanguageBind/Video-LLaVA-7B-hf)")
    p.add_argument("--prompt", default="analyst_v1", help="video-llava: bundled prompt name or a .txt file")
    p.add_argument("--max-new-tokens", type=int, default=200, help="video-llava: longest description, in tokens (default 200)")
    p.add_argument("--device", help="video-llava: cuda | cpu (default: cuda if available)")
    p.add_argument("--batch-size", type=int, default=8, help="clips described per model call (default 8)")
    p.add_argument("--label-conditioned", action="store_true",
                   help="video-llava: put the ground-truth label in the prompt (the paper's setting); the cache is "
                        "marked leaks_label: true")
    p.add_argument("--no-refine", action="store_true", help="store the raw text as the description")
    p.add_argument("--out", help="cache file (default descriptions/<dataset>_<backend>.jsonl; with --clips, "
                                 "<folder name> in place of <dataset>)")
    p.add_argument("--limit", type=int, help="describe at most this many clips (a quick look)")
    p.add_argument("--audit", action="store_true",
                   help="afterwards, report how well a text-only classifier predicts the label (leakage audit)")
    examples(p, "finecliper describe --backend landmarks --manifest runs/prep/manifest_dfew_clip_224x224.json "
                "--face-cache runs/faces/dfew --out runs/desc/dfew_landmarks.jsonl",
             "finecliper describe --backend landmarks --clips my_videos --face-cache runs/faces/mine",
             "finecliper describe --backend video-llava --dataset dfew --annotations DFEW --data-root DFEW "
             "--variant clip_224x224 --model Video-LLaVA-7B-hf --audit")


def _label_name(ds: str, rec) -> str:
    from finecliper.data import labels as L

    names = L.classes(ds)
    return "_".join(names[y] for y in rec.labels)


def _records(ds: str, annotations, folds, splits, **kw) -> list:
    from finecliper.data.splits import read_split

    seen: dict[str, object] = {}
    for fold in folds:
        for split in splits:
            for r in read_split(ds, annotations, fold, split, **kw):
                seen.setdefault(r.clip_id, r)
    return list(seen.values())


def collect_items(args) -> tuple[str, list]:
    """(dataset key, ClipItems) from a manifest, from split files or from a folder of clips; ``--limit`` first."""
    ds, items = _folder_items(args) if args.clips else _split_items(args)
    return ds, items if args.limit is None else items[: args.limit]


def _split_items(args) -> tuple[str, list]:
    """(dataset key, ClipItems) of a manifest or of split files."""
    from finecliper.data import labels as L
    from finecliper.data.frames import clips_root
    from finecliper.text.describe import ClipItem

    captions = args.backend == "captions"
    if args.manifest:
        from finecliper.data.prepare import load_manifest

        m = load_manifest(args.manifest)
        ds = L.dataset_key(m.dataset)
        if captions and ds != "mafw":
            raise ValueError(f"--backend captions needs MAFW (its with_caption files); got {ds}")
        opts = m.data["options"]
        folds = sorted({int(k.split("/")[0].removeprefix("fold")) for k in m.data["splits"]})
        recs = _records(ds, m.data["annotations_root"], folds, ("train", "test"),
                        layout=opts["layout"], captions=captions or opts["captions"], compound=opts["compound"])
        root = Path(args.data_root or m.data["data_root"]) / m.data.get("clips_root", "")
        paths = {cid: root / rel for cid, rel in m.clip_paths().items()}
    else:
        if not args.annotations:
            raise ValueError("--dataset needs --annotations (the folder holding the split files)")
        ds = L.dataset_key(args.dataset)
        if captions and ds != "mafw":
            raise ValueError(f"--backend captions needs MAFW (its with_caption files); got {ds}")
        folds = parse_folds(args.folds, ds, None)
        splits = ("train", "test") if args.split == "all" else (args.split,)
        recs = _records(ds, args.annotations, folds, splits, captions=captions)
        root = clips_root(args.data_root, args.variant) if args.data_root else None
        paths = {r.clip_id: root / r.path for r in recs} if root else {}
    items = [ClipItem(r.clip_id, paths.get(r.clip_id), _label_name(ds, r), r.caption)
             for r in sorted(recs, key=lambda r: r.clip_id)]
    return ds, items


def _folder_items(args) -> tuple[str, list]:
    """A plain folder: clip ids and paths as `finecliper extract --clips` finds them; the folder's name is the
    dataset key of the cache."""
    from finecliper.face.extract import discover_clips
    from finecliper.text.describe import ClipItem

    if args.backend == "captions":
        raise ValueError("--backend captions needs MAFW (its with_caption files), not --clips")
    root = Path(args.clips)
    return root.resolve().name or "clips", [ClipItem(cid, path) for cid, path in discover_clips(root)]


def check_face_cache(args, backend, items) -> None:
    """--clips with landmarks: every clip needs its face cache; one error names the first missing ones."""
    missing = backend.missing(items)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(f"{len(missing)} of {len(items)} clips have no face cache in {args.face_cache} ({shown}); "
                         f"run `finecliper extract --clips {args.clips} --out {args.face_cache}` first")


def make_backend(args):
    from finecliper.text import describe as D

    if args.label_conditioned and args.backend != "video-llava":
        raise ValueError("--label-conditioned only applies to --backend video-llava")
    if args.backend == "landmarks":
        if not args.face_cache:
            raise ValueError("--backend landmarks needs --face-cache DIR (from `finecliper extract`)")
        return D.LandmarksBackend(args.face_cache, fps=args.fps)
    if args.backend == "video-llava":
        if not args.model:
            raise ValueError("--backend video-llava needs --model DIR (a Video-LLaVA HF model folder)")
        from finecliper.text.video_llava import VideoLlavaDescriber, load_prompt

        describer = VideoLlavaDescriber(args.model, prompt=load_prompt(args.prompt), device=args.device,
                                        max_new_tokens=args.max_new_tokens, label_conditioned=args.label_conditioned)
        return D.VideoLlavaBackend(describer)
    return D.CaptionsBackend()


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from finecliper.clip.tokenizer import load_tokenizer
    from finecliper.text.desc_cache import DescriptionCache, DescriptionCacheError, read_cache
    from finecliper.text.describe import cache_identity, run_describe
    from finecliper.text.token_stats import length_stats, token_lengths

    console = Console(stderr=True)
    try:
        ds, items = collect_items(args)
        backend = make_backend(args)
        if args.clips and args.backend == "landmarks":
            check_face_cache(args, backend, items)
        refine = not args.no_refine
        out = Path(args.out or f"descriptions/{ds}_{args.backend}{'_label-conditioned' if args.label_conditioned else ''}.jsonl")
        cache = DescriptionCache(out, cache_identity(backend, ds, refine),
                                 metadata={"prompt": getattr(getattr(backend, "describer", None), "prompt", None),
                                           "model_dir": args.model, "face_cache": args.face_cache})
        tokenizer = load_tokenizer()
    except (ValueError, OSError, DescriptionCacheError) as e:
        print_error(e)
        return 2
    if backend.leaks_label:
        console.print("[yellow]label-conditioned: the ground-truth label is in the prompt; these descriptions leak "
                      "the label (marked leaks_label: true)[/yellow]")
    console.print(f"{len(items)} clips ({len(cache)} already in {out})  backend={backend.name}  refine={refine}")
    with Progress(TextColumn("[bold]describe"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console) as prog:
        task = prog.add_task("describe", total=len(items))
        summary = run_describe(items, backend, cache, batch_size=args.batch_size, refine=refine,
                               progress=lambda n: prog.advance(task, n))
    _, entries = read_cache(out)
    wanted = {it.clip_id for it in items}
    texts = [e["text"] for k, e in entries.items() if k in wanted]
    console.print(f"described {summary.described}, already cached {summary.already}, skipped {len(summary.skipped)}")
    if texts:
        console.print("refined descriptions (CLIP BPE tokens incl. SOT/EOT): "
                      + length_stats(token_lengths(texts, tokenizer)).format())
    for cid, why in summary.skipped[:20]:
        console.print(f"[red]skipped[/red] {cid}: {why}")
    if len(summary.skipped) > 20:
        console.print(f"... and {len(summary.skipped) - 20} more")
    if args.audit:
        from finecliper.text.audit import audit_cache

        try:
            result = audit_cache(out, {it.clip_id: it.label for it in items if it.label})
            console.print("leakage audit: " + result.format())
        except ValueError as e:
            console.print(f"[yellow]audit not run:[/yellow] {e}")
    return 1 if summary.skipped else 0


if __name__ == "__main__":
    from finecliper.cli.main import main

    sys.exit(main(["describe", *sys.argv[1:]]))
