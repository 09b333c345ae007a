"""``finecliper info``: parameters per module of a variant, and the runtime environment."""
from __future__ import annotations

from finecliper.cli import examples

HELP = "Print trainable and frozen parameters per module of a variant, the environment and the optional extras."


def add_arguments(p) -> None:
    p.add_argument("--variant", default="base", help="base | star | dagger | star_dagger")
    p.add_argument("--clip", help="CLIP checkpoint (OpenAI, open_clip, HF, any ViT: B/16, B/32, L/14 …); without it, "
                                  "counts use the --shape (no weights loaded)")
    p.add_argument("--shape", default="ViT-B/16", help="ViT-B/16 | ViT-B/32 | ViT-L/14: the CLIP layout counted without --clip")
    p.add_argument("--longclip", help="Long-CLIP checkpoint (variants with descriptions)")
    p.add_argument("--num-classes", type=int, default=7, help="number of classes of the prompts (default 7, as DFEW)")
    p.add_argument("--allow-pickle", action="store_true", help="allow TorchScript/pickled checkpoints to run code")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="model config overrides, e.g. share_pn_adapters=true (every key: `finecliper config show`, model.*)")
    examples(p, "finecliper info", "finecliper info --variant star_dagger",
             "finecliper info --variant dagger --clip ViT-B-16.pt --longclip longclip-B.pt")


def run(args) -> int:
    import dataclasses
    import platform

    import torch
    from rich.console import Console
    from rich.table import Table

    from finecliper import __version__
    from finecliper.config import load_config
    from finecliper.extras import status_lines
    from finecliper.model.config import VARIANT_SYMBOLS, ModelConfig
    from finecliper.model.finecliper import FineCLIPER
    from finecliper.model.shapes import count_parameters

    cfg = load_config(ModelConfig, None, [f"variant={args.variant}", *args.overrides])
    cfg = dataclasses.replace(cfg, classes=cfg.classes or [f"class{i}" for i in range(args.num_classes)])
    if args.clip:
        cfg = dataclasses.replace(cfg, clip=args.clip, longclip=args.longclip, allow_pickle=args.allow_pickle)
        counts = FineCLIPER.from_config(cfg).parameter_counts()
        source = args.clip
    else:
        counts = count_parameters(cfg, args.shape, per_module=True)
        source = f"{args.shape} shape (no weights loaded)"

    console = Console()
    table = Table(title=f"{VARIANT_SYMBOLS[cfg.variant]} ({cfg.variant}) on {source}")
    table.add_column("module")
    table.add_column("trainable", justify="right")
    table.add_column("frozen", justify="right")
    for name, c in counts.items():
        table.add_row(name, f"{c['trainable']:,}", f"{c['frozen']:,}", style="bold" if name == "total" else None)
    console.print(table)
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    console.print(f"finecliper {__version__} · torch {torch.__version__} · python {platform.python_version()} · "
                  f"CUDA device: {cuda} · CPU threads: {torch.get_num_threads()}", soft_wrap=True)
    for line in status_lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return 0
