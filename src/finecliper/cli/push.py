"""``finecliper push``: upload a checkpoint folder to the Hugging Face Hub with a generated model card."""
from __future__ import annotations

from finecliper.cli import examples

HELP = "Upload a checkpoint to the Hugging Face Hub: config, tunable weights, backbone hashes and a model card."

LOGIN = ("Log in first (`hf auth login`) or set HF_TOKEN. The frozen CLIP/Long-CLIP files are never uploaded: the "
         "card names them with their sha256 and where to get them; absolute paths of the trainer's disk stay home.")


def add_arguments(p) -> None:
    p.description = f"{HELP} {LOGIN}"
    examples(p, "finecliper push runs/dfew/fold_1/best alice/finecliper-dfew-fold1 --dry-run staged/   # look first",
             "finecliper push runs/dfew/fold_1/best alice/finecliper-dfew-fold1",
             "finecliper predict clip.mp4 --checkpoint alice/finecliper-dfew-fold1 --clip ViT-B-16.pt")
    p.add_argument("checkpoint", help="checkpoint folder (config.yaml, model.safetensors, backbones.json), e.g. "
                                      "runs/x/fold_1/best; its run's summary.json and config.yaml go into the card")
    p.add_argument("repo_id", help="Hub repository, user/name (created if it does not exist)")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--branch", help="upload to this branch (created if needed; default main)")
    p.add_argument("--message", help="commit message (default: 'finecliper <version> checkpoint')")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to the branch")
    p.add_argument("--dry-run", metavar="DIR",
                   help="write the folder that would be uploaded (with README.md, the model card) into DIR and upload nothing")


def run(args) -> int:
    from finecliper.model import hub

    if args.dry_run:
        out = hub.stage(args.checkpoint, args.dry_run, args.repo_id)
        print(f"staged {', '.join(sorted(p.name for p in out.iterdir()))} in {out} (nothing uploaded)")
        return 0
    url = hub.push(args.checkpoint, args.repo_id, private=args.private or None, branch=args.branch,
                   commit_message=args.message, create_pr=args.create_pr or None)
    print(f"pushed {args.checkpoint} to {args.repo_id}: {url}")
    return 0
