"""`cancernet push`: stage a model (or Space, or dataset card) repo in a folder, then upload it.

cancernet push --model runs/demo/ensemble --repo-id me/cancernet-ensemble --dry-run
cancernet push --staged runs/demo/hub/cancernet-ensemble --repo-id me/cancernet-ensemble
cancernet push --model runs/demo/members/vit-tiny --repo-id me/cancernet-vit-tiny --kind member
cancernet push --model runs/demo/ensemble --repo-id me/cancernet-ensemble --space me/cancernet
cancernet push --data data/demo --split-file runs/demo/split.json --repo-id me/cancer-images --dry-run
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "push",
        help="stage a model/Space/dataset-card repo in a folder and upload it to the Hub",
        description="Stage the exact repo content (weights, config, remote code, processor, README card, plots, "
        "metrics.json) in a folder, then upload it with create_repo + upload_folder. Token: HF_TOKEN or "
        "`hf auth login`; HF_ENDPOINT is respected.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", type=Path, help="member or ensemble folder to publish")
    what.add_argument("--staged", type=Path, help="upload a folder staged before (by --dry-run) as it is")
    what.add_argument("--data", type=Path, help="stage the dataset card of this image folder")
    p.add_argument("--repo-id", required=True, help="ORG/NAME of the repo to create or update")
    p.add_argument(
        "--kind", choices=("ensemble", "member"), help="model kind (default: detected from the folder)"
    )
    p.add_argument(
        "--report",
        type=Path,
        help="`cancernet evaluate` output folder whose metrics.json and plots the "
        "card reports (default: <run>/reports/<model folder name> if present, else the model's metrics.json)",
    )
    p.add_argument("--stage-dir", type=Path, help="staging folder (default: <run>/hub/<name>); must be empty")
    p.add_argument("--overwrite", action="store_true", help="replace a previous staging in --stage-dir")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument(
        "--dry-run", action="store_true", help="stage only; print the command that uploads the stage"
    )
    p.add_argument(
        "--space", metavar="ORG/NAME", help="also stage (and upload) the Gradio Space for this model"
    )
    p.add_argument(
        "--space-dir", type=Path, default=Path("spaces/cancernet"), help="the Space's source folder"
    )
    p.add_argument(
        "--repo-type",
        choices=("model", "dataset", "space"),
        help="repo type for --staged (default: space when the README has an sdk, else model)",
    )
    p.add_argument(
        "--member-repo",
        action="append",
        default=[],
        metavar="ORG/NAME",
        help="published member repo to list in the ensemble card (repeatable)",
    )
    p.add_argument(
        "--base-model",
        action="append",
        default=None,
        metavar="HUB_ID",
        help="card base_model (repeatable; default: the members' Hub checkpoints)",
    )
    p.add_argument(
        "--license", default=None, help="card license (default: cc-by-nc-4.0 for models, unknown for data)"
    )
    p.add_argument("--dataset-id", help="dataset id for the card metadata and eval results")
    p.add_argument("--split-file", type=Path, help="split manifest to describe in the dataset card (--data)")
    p.add_argument("--taxonomy", type=Path, help="taxonomy JSON the model/data uses (default: Multi Cancer)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..hub import publish as hub
    from ..taxonomy import load_taxonomy

    taxonomy = load_taxonomy(args.taxonomy)
    if args.staged is not None:
        repo_type = args.repo_type or ("space" if _has_sdk(args.staged) else "model")
        print(hub.publish(args.staged, args.repo_id, repo_type=repo_type, private=args.private))
        return 0
    if args.data is not None:
        stage = hub.stage_dataset_card(
            args.data,
            args.stage_dir or Path("runs") / "hub" / args.repo_id.split("/")[-1],
            repo_id=args.repo_id,
            taxonomy=taxonomy,
            split_file=args.split_file,
            license=args.license or "unknown",
            overwrite=args.overwrite,
        )
        print(f"staged dataset card of {args.data} for {args.repo_id}: {stage}")
        if args.dry_run:
            print(
                f"upload the card with: cancernet push --staged {stage} --repo-id {args.repo_id} --repo-type dataset"
            )
        else:
            print(hub.publish(stage, args.repo_id, repo_type="dataset", private=args.private))
        print(
            f"upload the images with: hf upload-large-folder {args.repo_id} {args.data} --repo-type dataset"
        )
        return 0
    result = hub.push_model(
        args.model,
        args.repo_id,
        kind=args.kind,
        report_dir=args.report,
        stage_dir=args.stage_dir,
        private=args.private,
        dry_run=args.dry_run,
        overwrite=args.overwrite,
        space_id=args.space,
        space_src=args.space_dir,
        taxonomy=taxonomy,
        license=args.license or hub.DEFAULT_LICENSE,
        dataset_id=args.dataset_id,
        base_models=args.base_model,
        member_repo_ids=args.member_repo,
    )
    print(result.summary())
    return 0


def _has_sdk(folder: Path) -> bool:
    readme = folder / "README.md"
    return readme.is_file() and "\nsdk:" in readme.read_text(encoding="utf-8").split("\n---", 1)[0]
