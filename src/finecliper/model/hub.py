"""Checkpoints on the Hugging Face Hub: load by repo id (cache, offline mode, revision), push with a model card.

A Hub repository holds exactly what a checkpoint folder holds (``model.factory``: config.yaml,
model.safetensors, backbones.json) plus a generated model card (README.md). Downloads go through
``huggingface_hub.snapshot_download``, so its cache (``HF_HUB_CACHE``, ``models--user--name/snapshots/
<commit>/``), ``revision`` (branch, tag or commit), ``HF_HUB_OFFLINE=1`` / ``local_files_only`` and
tokens work as for any Hub model. Uploads go through ``HfApi.create_repo`` + ``upload_folder`` of a
folder staged here (:func:`stage`), which is also what ``finecliper push --dry-run DIR`` writes.

A staged folder is portable: backbones.json keeps each backbone's sha256, format and file name but not
the absolute path it had on the trainer's machine, and config.yaml names the backbone files without
their folders (paths on someone else's disk help nobody and tell about the trainer's file system).
"""
from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping

import yaml
from huggingface_hub import HfApi, ModelCard, ModelCardData, snapshot_download
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                    RevisionNotFoundError)

from finecliper import __version__
from finecliper.config import dump_yaml
from finecliper.io import replace_dir
from finecliper.model import factory
from finecliper.model.config import VARIANT_SYMBOLS, ModelConfig

CARD = "README.md"
HUB_FILES = (factory.CONFIG, factory.WEIGHTS, factory.BACKBONES, CARD)
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
PAPER_URL = "https://arxiv.org/abs/2407.02157"

# The Hub metadata of every finecliper model: the ModelHubMixin class arguments of FineCLIPER, and the
# front matter of every card written here.
MIXIN_INFO: dict[str, Any] = {
    "library_name": "finecliper", "license": "mit", "pipeline_tag": "video-classification",
    "paper_url": PAPER_URL,
    "tags": ["finecliper", "facial-expression-recognition", "dynamic-facial-expression-recognition", "clip"],
}

# Where the frozen backbones come from (the card names them; the weights are not ours to upload).
BACKBONE_SOURCES = {
    "clip": "OpenAI CLIP ViT-B/16, `ViT-B-16.pt`: https://openaipublic.azureedge.net/clip/models/"
            "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
    "longclip": "Long-CLIP-B, `longclip-B.pt`: https://huggingface.co/BeichenZhang/LongCLIP-B",
}
OPENAI_VIT_B16_SHA256 = "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"

DEMO_MARKER = "finecliper_demo.json"  # `finecliper demo` writes it into its folder (its re-runs may replace the parts)


class HubError(factory.CheckpointError):
    """A Hub id that cannot be resolved to a checkpoint folder (one line: what, and what to do)."""


# ----------------------------------------------------------------------------- loading

def is_repo_id(name: str | Path) -> bool:
    """``user/name`` that is not an existing local path."""
    return bool(REPO_ID.match(str(name))) and not Path(name).exists()


def checkpoint_dir(path_or_id: str | Path, *, revision: str | None = None, cache_dir: str | Path | None = None,
                   local_files_only: bool = False, force_download: bool = False, token: str | bool | None = None) -> Path:
    """The local checkpoint folder of a folder path or a Hub repo id (downloaded into, or found in, the HF cache)."""
    if not is_repo_id(path_or_id):
        if not Path(path_or_id).exists():
            raise factory.CheckpointError(f"{path_or_id}: no such checkpoint folder (nor a Hub id like user/name)")
        return factory.resolve_checkpoint_dir(path_or_id)
    repo_id = str(path_or_id)
    at = f" at revision {revision!r}" if revision else ""
    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                                   force_download=force_download, token=token, allow_patterns=list(HUB_FILES),
                                   library_name="finecliper", library_version=__version__)
    except LocalEntryNotFoundError:
        cache = cache_dir or hf_constants.HF_HUB_CACHE
        raise HubError(f"{repo_id}: not a local folder, and not in the Hugging Face cache {cache}{at}, which is all "
                       f"that can be read offline (HF_HUB_OFFLINE=1 or local_files_only); go online once to download "
                       f"it, or pass a checkpoint folder") from None
    except RevisionNotFoundError:
        raise HubError(f"{repo_id}: the Hub has no revision {revision!r} of this model") from None
    except RepositoryNotFoundError:
        raise HubError(f"{repo_id}: no such model on the Hugging Face Hub (a private one needs `hf auth login`)") from None
    except HfHubHTTPError as e:
        raise HubError(f"{repo_id}: the Hub refused the download ({str(e).splitlines()[0]})") from None
    try:
        return factory.resolve_checkpoint_dir(folder)
    except factory.CheckpointError:
        raise HubError(f"{repo_id}{at}: this Hub repository holds no finecliper checkpoint ({factory.CONFIG} "
                       f"missing)") from None


# ----------------------------------------------------------------------------- the model card

def _find_up(directory: Path, name: str, levels: int = 4) -> Path | None:
    for d in [directory, *list(directory.parents)[:levels]]:
        if (d / name).is_file():
            return d / name
    return None


def run_info(directory: str | Path) -> dict[str, Any]:
    """What the training run around a checkpoint folder recorded: the fold's summary.json and experiment
    config.yaml (the folder's parent, as `finecliper train` lays out ``out/fold_k/{best,last}``), and
    whether `finecliper demo` made it (its marker file in an ancestor folder)."""
    directory = Path(directory).resolve()
    info: dict[str, Any] = {"summary": None, "config": None, "demo": _find_up(directory, DEMO_MARKER) is not None}
    summary = directory.parent / "summary.json"
    if summary.is_file():
        try:
            info["summary"] = json.loads(summary.read_text())
        except (OSError, ValueError):
            pass
    config = directory.parent / factory.CONFIG
    if config.is_file():
        try:
            info["config"] = yaml.safe_load(config.read_text())
        except (OSError, yaml.YAMLError):
            pass
    return info


def _portable_paths(obj: Any) -> Any:
    """The same structure with absolute paths cut to ``…/name`` (the card shows settings, not someone's disk)."""
    if isinstance(obj, dict):
        return {k: _portable_paths(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_portable_paths(v) for v in obj]
    if isinstance(obj, str) and obj.startswith("/") and len(obj) > 1:
        return f"…/{Path(obj).name}"
    return obj


def _metrics_table(summary: Mapping[str, Any], tag: str | None) -> list[str]:
    rows = ["| checkpoint | epoch | UAR | WAR | selection |", "|---|---:|---:|---:|---|"]
    for key in ("last", "best"):
        s = summary.get(key)
        if not isinstance(s, dict) or "uar" not in s:
            continue
        mark = " (this one)" if key == tag else ""
        rows.append(f"| {key}{mark} | {s.get('epoch', '')} | {100 * s['uar']:.2f} | {100 * s['war']:.2f} | "
                    f"{s.get('selection', '')} |")
    return rows if len(rows) > 2 else []


def card_text(cfg: ModelConfig, backbones: Mapping[str, Mapping[str, str]], *, repo_id: str | None = None,
              run: Mapping[str, Any] | None = None, checkpoint_name: str | None = None,
              tunable: int | None = None) -> str:
    """README.md of a Hub repository: YAML front matter, then what the model is, how to load it, its frozen
    backbones (file, sha256, where to get them), the data, fold and metrics of its run, its training config."""
    run = run or {}
    summary = run.get("summary") or {}
    data = ModelCardData(library_name=MIXIN_INFO["library_name"], license=MIXIN_INFO["license"],
                         pipeline_tag=MIXIN_INFO["pipeline_tag"],
                         tags=sorted(set(MIXIN_INFO["tags"] + [f"finecliper-{cfg.variant}"]
                                         + (["synthetic-demo"] if run.get("demo") else []))))
    symbol = VARIANT_SYMBOLS[cfg.variant]
    dataset = summary.get("dataset")
    title = f"# {symbol} ({cfg.variant})" + (f" on {dataset.upper()} fold {summary.get('fold')}" if dataset else "")
    lines = [title, ""]
    if run.get("demo"):
        lines += ["> **Synthetic demo checkpoint.** Trained by `finecliper demo` on generated clips of a few photos "
                  "with animated expressions: it shows that the pipeline runs end to end. It is not a model of real "
                  "facial expressions; do not use it to judge anyone's.", ""]
    lines += [f"A FineCLIPER model ([paper]({PAPER_URL}), ACM MM'24) for dynamic facial expression recognition, "
              f"made with finecliper {__version__}. This repository holds only the tunable weights"
              + (f" ({tunable:,} parameters: adapters, temporal embeddings, projections)" if tunable else "")
              + "; the frozen backbones below are not included. finecliper refuses any backbone file whose "
              "sha256 differs from the recorded one.", ""]
    rid = repo_id or "USER/MODEL"
    flags = " --clip ViT-B-16.pt" + (" --longclip longclip-B.pt" if "longclip" in backbones else "")
    lines += ["## Use", "", "```bash", f"finecliper predict video.mp4 --checkpoint {rid}{flags} --out results.csv",
              "```", "", "```python", "import finecliper", "",
              f"model = finecliper.FineCLIPER.from_pretrained(\"{rid}\", clip=\"ViT-B-16.pt\""
              + (", longclip=\"longclip-B.pt\"" if "longclip" in backbones else "") + ")",
              f"frames = finecliper.predict_video(\"video.mp4\", checkpoint=\"{rid}\", clip=\"ViT-B-16.pt\""
              + (", longclip=\"longclip-B.pt\"" if "longclip" in backbones else "") + ")", "```", "",
              "Without `--clip`/`--longclip` the backbones are looked for in `$FINECLIPER_CACHE/backbones` "
              "(default `~/.cache/finecliper/backbones`) by their file names below.", ""]
    lines += ["## Model", "", "| | |", "|---|---|", f"| variant | {symbol} (`{cfg.variant}`) |",
              f"| modalities | {', '.join(cfg.fused_modalities())} |", f"| classes | {', '.join(cfg.classes)} |",
              f"| frames per clip | {cfg.num_frames} |",
              f"| prompts | `{cfg.pos_template}` / `{cfg.neg_template}` |", ""]
    lines += ["## Frozen backbones", "", "| role | file | format | sha256 | where to get it |", "|---|---|---|---|---|"]
    for role, rec in backbones.items():
        known = " (this exact file)" if rec.get("sha256") == OPENAI_VIT_B16_SHA256 else ""
        lines.append(f"| {factory.BACKBONE_NAMES.get(role, role)} | `{rec.get('file')}` | {rec.get('format')} | "
                     f"`{rec.get('sha256')}` | {BACKBONE_SOURCES.get(role, '')}{known} |")
    lines.append("")
    if summary:
        lines += ["## Training data and results", "", f"- dataset: {summary.get('dataset')}",
                  f"- data variant: {summary.get('data_variant')}", f"- fold: {summary.get('fold')}",
                  f"- epochs: {summary.get('epochs')}", ""]
        lines += _metrics_table(summary, checkpoint_name)
        lines.append("")
    if run.get("config"):
        lines += ["## Training config", "", "```yaml", yaml.safe_dump(_portable_paths(run["config"]), sort_keys=False, allow_unicode=True).rstrip(),
                  "```", ""]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)


# ----------------------------------------------------------------------------- staging and pushing

def portable_backbones(recorded: Mapping[str, Mapping[str, str]], roles: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """The backbone identities a shared checkpoint keeps: sha256, format and file name, not the local path."""
    return {r: {k: v for k, v in recorded[r].items() if k != "path"} for r in roles if r in recorded}


def portable_files(directory: str | Path, repo_id: str | None = None) -> dict[str, bytes]:
    """The files of a Hub repository for a checkpoint folder (checked readable; see the module doc)."""
    directory = factory.resolve_checkpoint_dir(directory)
    cfg = factory.read_config(directory)
    weights = factory.read_weights(directory)  # a damaged file must not be published
    recorded = factory.read_backbone_identities(directory)
    factory.require_recorded(directory, cfg.backbone_roles(), recorded)
    backbones = portable_backbones(recorded, cfg.backbone_roles())
    portable = dataclasses.replace(cfg, clip=Path(cfg.clip).name if cfg.clip else None,
                                   longclip=Path(cfg.longclip).name if cfg.longclip else None)
    card = card_text(cfg, backbones, repo_id=repo_id, run=run_info(directory), checkpoint_name=directory.name,
                     tunable=sum(v.numel() for v in weights.values()))
    return {factory.CONFIG: dump_yaml(portable).encode(), factory.WEIGHTS: (directory / factory.WEIGHTS).read_bytes(),
            factory.BACKBONES: (json.dumps(backbones, indent=2) + "\n").encode(), CARD: card.encode()}


def stage(directory: str | Path, out: str | Path, repo_id: str | None = None) -> Path:
    """Write the folder that a push of checkpoint ``directory`` uploads into ``out`` (atomically)."""
    files = portable_files(directory, repo_id)
    out = Path(out)
    with replace_dir(out) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
    return out


def upload(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
           branch: str | None = None, commit_message: str | None = None, create_pr: bool | None = None) -> str:
    """Create the repository if needed and upload ``folder`` as one commit; returns the commit URL."""
    api = HfApi(token=token, library_name="finecliper", library_version=__version__)
    try:
        repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
        if branch:
            api.create_branch(repo_id=repo_id, branch=branch, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder), revision=branch,
                                 create_pr=create_pr,
                                 commit_message=commit_message or f"finecliper {__version__} checkpoint")
    except (HfHubHTTPError, OSError) as e:  # refused, not logged in, offline, unreachable
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HubError(f"{repo_id}: the upload failed ({first}); log in with `hf auth login` (or set HF_TOKEN), "
                       f"check the repository name and that you may write to it, and that HF_HUB_OFFLINE is not set") from None
    return str(getattr(info, "commit_url", info))


def push(directory: str | Path, repo_id: str, **upload_kw) -> str:
    """Stage checkpoint ``directory`` (config, tunable weights, backbone hashes, model card) and upload it."""
    with tempfile.TemporaryDirectory(prefix="finecliper-push-") as tmp:
        folder = stage(directory, Path(tmp) / "upload", repo_id)
        return upload(folder, repo_id, **upload_kw)


def model_card(directory: str | Path, repo_id: str | None = None) -> ModelCard:
    """The card a push of ``directory`` would upload, as huggingface_hub's ``ModelCard`` (``.data``, ``.text``)."""
    return ModelCard(portable_files(directory, repo_id)[CARD].decode())
