"""Stage a Hub repo in a folder a person can read, then upload exactly that folder.

    stage = stage_model_repo("runs/demo/ensemble", "runs/demo/hub/cancernet-ensemble",
                             repo_id="me/cancernet-ensemble", report_dir="runs/demo/reports/ensemble")
    publish(stage, "me/cancernet-ensemble")        # HF_TOKEN / `hf auth login`; HF_ENDPOINT respected

A staged folder is the repo: weights, config, image processor, remote code (ensemble), README.md card,
metrics.json, plots/ and the run's split/config files. Members are published the same way as plain
`transformers` repos (no remote code). `stage_space` stages the Gradio Space pointing at the model repo.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from ..constants import (
    ENSEMBLE_META_FILE,
    ENV_MODEL,
    ENV_MODEL_REVISION,
    HUB_SUBDIR,
    MEMBERS_SUBDIR,
    METRICS_FILE,
    REPORTS_SUBDIR,
    RUN_CONFIG_FILE,
    SPLIT_FILE,
    SYNTH_MANIFEST_FILE,
)
from ..errors import HubUnreachableError, PublishError
from ..taxonomy import MULTI_CANCER, Taxonomy
from .cards import (
    CONFIG_FILE,
    DEFAULT_LICENSE,
    PREPROCESSOR_FILE,
    REVISION_PLACEHOLDER,
    TRAINER_STATE_FILE,
    detect_kind,
    read_run,
    render_dataset_card,
    render_model_card,
)

logger = logging.getLogger(__name__)

README = "README.md"
PLOTS_DIR = "plots"
REPO_TYPES = ("model", "dataset", "space")
DEFAULT_SPACE_DIR = Path("spaces/cancernet")
# Run files that travel with a model when they exist (the card refers to them).
OPTIONAL_RUN_FILES = (SPLIT_FILE, RUN_CONFIG_FILE, TRAINER_STATE_FILE, "taxonomy.json")
# JSON files whose absolute local paths are scrubbed in the staged copy (the card reads the originals).
SCRUBBED_FILES = frozenset({SPLIT_FILE, RUN_CONFIG_FILE, TRAINER_STATE_FILE, ENSEMBLE_META_FILE})
# Never copied from a Space source folder: caches, local state, test debris.
SPACE_IGNORED = {
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".gradio",
    "flagged",
    ".ipynb_checkpoints",
    ".DS_Store",
    ".env",
    ".venv",
    "venv",
}
SPACE_IGNORED_SUFFIXES = (".pyc", ".pyo", ".log", ".egg-info")
_REPO_ID = re.compile(r"^[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9_])?/[A-Za-z0-9_](?:[\w.-]{0,94}[A-Za-z0-9_])?$")


# ---- checks ------------------------------------------------------------------------------------------


def check_repo_id(repo_id: str) -> str:
    """`ORG/NAME` as the Hub accepts it, else a PublishError that says what is wrong."""
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise PublishError(
            f"Repo id {repo_id!r} is malformed: use ORG/NAME (or USER/NAME) with letters, digits, '-', '_' and '.', "
            "at most 96 characters per part, no '--' or '..', not starting or ending with '-' or '.' "
            "(e.g. my-lab/cancernet-ensemble)."
        )
    return repo_id


def _prepare_stage_dir(stage_dir: Path, *, overwrite: bool, sources: Sequence[Path]) -> Path:
    stage_dir = Path(stage_dir)
    for source in sources:
        source = source.resolve()
        target = stage_dir.resolve()
        if target == source or source in target.parents or target in source.parents:
            raise PublishError(
                f"Staging folder {stage_dir} overlaps the source folder {source}; stage into a separate folder "
                "(e.g. runs/<run>/hub/<name>)."
            )
    if stage_dir.exists() and not stage_dir.is_dir():
        raise PublishError(f"Staging folder {stage_dir} is a file; pass a folder path.")
    if stage_dir.is_dir() and any(stage_dir.iterdir()):
        if not overwrite:
            raise PublishError(
                f"Staging folder {stage_dir} is not empty; a staged repo must hold exactly what goes up. Pass an "
                "empty or new folder, or --overwrite to replace a previous staging."
            )
        if not (stage_dir / README).is_file():
            raise PublishError(
                f"Staging folder {stage_dir} is not empty and holds no README.md, so it is not a previous staging; "
                "refusing to delete it even with --overwrite. Pick another folder."
            )
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    return stage_dir


def _weight_files(model_dir: Path) -> list[str]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
        missing = [s for s in shards if not (model_dir / s).is_file()]
        if missing:
            raise PublishError(f"{index} lists weight shards that are missing: {missing}; re-save the model.")
        return [index.name, *shards]
    if (model_dir / "model.safetensors").is_file():
        return ["model.safetensors"]
    legacy = [n for n in ("pytorch_model.bin", "model.bin") if (model_dir / n).is_file()]
    hint = " (pickle weights found: re-save with save_pretrained(safe_serialization=True))" if legacy else ""
    raise PublishError(
        f"Model folder {model_dir} has no model.safetensors{hint}; pass the output folder of `cancernet train` "
        "or `cancernet ensemble build`."
    )


def _remote_code_files(model_dir: Path, config: dict) -> list[str]:
    """The .py files config.json's auto_map/custom_pipelines need, plus their siblings in the folder."""
    needed = set()
    for ref in (config.get("auto_map") or {}).values():
        for item in ref if isinstance(ref, list) else [ref]:
            if isinstance(item, str) and "." in item:
                needed.add(item.split("--")[-1].rsplit(".", 1)[0] + ".py")
    for spec in (config.get("custom_pipelines") or {}).values():
        impl = spec.get("impl") if isinstance(spec, dict) else None
        if isinstance(impl, str):
            needed.add(impl.rsplit(".", 1)[0] + ".py")
    if not needed:
        raise PublishError(
            f"{model_dir / CONFIG_FILE} has no auto_map/custom_pipelines, so it is not an ensemble saved with its "
            "remote code; rebuild it with `cancernet ensemble build`, or push it with --kind member."
        )
    missing = sorted(n for n in needed if not (model_dir / n).is_file())
    if missing:
        raise PublishError(
            f"Ensemble folder {model_dir} lacks the remote code files {missing} that config.json refers to; "
            "rebuild it with `cancernet ensemble build`."
        )
    return sorted(needed | {p.name for p in model_dir.glob("*.py")})


def expected_model_files(
    model_dir: str | Path, *, kind: str, plots: Sequence[str] = (), with_split: bool | None = None
) -> list[str]:
    """The files a staged repo of this model holds (relative posix paths, sorted)."""
    model_dir = Path(model_dir)
    required = [CONFIG_FILE, PREPROCESSOR_FILE] + ([ENSEMBLE_META_FILE] if kind == "ensemble" else [])
    missing = [n for n in required if not (model_dir / n).is_file()]
    if missing:
        what = "`cancernet ensemble build`" if kind == "ensemble" else "`cancernet train`"
        raise PublishError(
            f"Model folder {model_dir} is missing {missing}; pass the complete output folder of {what}."
        )
    files = [*required, *_weight_files(model_dir), README, METRICS_FILE]
    if kind == "ensemble":
        config = json.loads((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        files += _remote_code_files(model_dir, config)
    # split.json: the model folder's copy, or (ensemble) the manifest its fit recorded; with_split=None: if present.
    files += [n for n in OPTIONAL_RUN_FILES if n != SPLIT_FILE and (model_dir / n).is_file()]
    if with_split or (with_split is None and (model_dir / SPLIT_FILE).is_file()):
        files.append(SPLIT_FILE)
    files += [f"{PLOTS_DIR}/{Path(p).name}" for p in plots]
    return sorted(set(files))


# ---- staging -----------------------------------------------------------------------------------------


def stage_model_repo(
    model_dir: str | Path,
    stage_dir: str | Path,
    *,
    kind: str = "ensemble",
    repo_id: str,
    report_dir: str | Path | None = None,
    taxonomy: Taxonomy = MULTI_CANCER,
    license: str = DEFAULT_LICENSE,  # noqa: A002 - the Hub's metadata key
    dataset_id: str | None = None,
    base_models: Sequence[str] | None = None,
    member_repo_ids: Sequence[str] = (),
    overwrite: bool = False,
) -> Path:
    """Write the exact content of a member or ensemble repo into `stage_dir`; return it.

    The card is rendered from the model's files and `report_dir/metrics.json` (a `cancernet evaluate`
    report; without one, the training run's own metrics.json). Plots of the report go to `plots/`.
    """
    check_repo_id(repo_id)
    for other in member_repo_ids:
        check_repo_id(other)
    model_dir = Path(model_dir)
    run = read_run(model_dir, kind=kind, report_dir=report_dir, taxonomy=taxonomy)
    plot_names = {name: path.name for name, path in run.plots.items()}
    if len(set(plot_names.values())) != len(plot_names):
        raise PublishError(
            f"Plots of {run.metrics_file} share file names: {plot_names}; give each a unique name."
        )
    files = expected_model_files(
        model_dir,
        kind=kind,
        plots=[p.name for p in run.plots.values()],
        with_split=run.split_file is not None,
    )
    sources = [model_dir] + ([Path(report_dir)] if report_dir is not None else [])
    stage = _prepare_stage_dir(Path(stage_dir), overwrite=overwrite, sources=sources)

    copied = {README, METRICS_FILE, SPLIT_FILE} | {f for f in files if f.startswith(f"{PLOTS_DIR}/")}
    for name in sorted(set(files) - copied):
        if name in SCRUBBED_FILES:
            _write_scrubbed(model_dir / name, stage / name)
        else:
            shutil.copy2(model_dir / name, stage / name)
    if run.split_file is not None:
        _write_scrubbed(run.split_file, stage / SPLIT_FILE)
    plot_paths = {}
    if run.plots:
        (stage / PLOTS_DIR).mkdir()
        for name, path in run.plots.items():
            shutil.copy2(path, stage / PLOTS_DIR / path.name)
            plot_paths[name] = f"{PLOTS_DIR}/{path.name}"
    metrics_out = json.loads(run.metrics_file.read_text(encoding="utf-8"))
    if plot_paths:
        metrics_out["plots"] = plot_paths  # paths inside the repo
    (stage / METRICS_FILE).write_text(json.dumps(scrub_paths(metrics_out), indent=2) + "\n", encoding="utf-8")
    card = render_model_card(
        run,
        repo_id=repo_id,
        license=license,
        dataset_id=dataset_id,
        base_models=list(base_models) if base_models is not None else None,
        plot_paths=plot_paths,
        member_repo_ids=member_repo_ids,
    )
    card.save(stage / README)

    staged = _listing(stage)
    if staged != files:
        raise PublishError(
            f"Staging {stage} produced {staged}, expected {files}; this is a bug, please report it."
        )
    logger.info("Staged %s repo %s in %s (%d files, %s)", kind, repo_id, stage, len(staged), _size(stage))
    return stage


def scrub_paths(value):
    """Absolute local paths (which reveal user names and folder layouts) reduced to `<local>/<last part>`."""
    if isinstance(value, dict):
        return {k: scrub_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_paths(v) for v in value]
    if (
        isinstance(value, str)
        and len(value) > 1
        and "\n" not in value
        and (value.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", value) or value.startswith("~"))
    ):
        return f"<local>/{PurePath(value.replace(chr(92), '/')).name}"
    return value


def _write_scrubbed(source: Path, target: Path) -> None:
    data = json.loads(source.read_text(encoding="utf-8"))
    target.write_text(json.dumps(scrub_paths(data), indent=2) + "\n", encoding="utf-8")


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _size(folder: Path) -> str:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    for unit in ("B", "KB", "MB", "GB"):
        if total < 1024 or unit == "GB":
            return f"{total:.0f} {unit}" if unit == "B" else f"{total:.1f} {unit}"
        total /= 1024
    return f"{total} B"


def _space_ignored(path: Path) -> bool:
    return any(part in SPACE_IGNORED or part.endswith(SPACE_IGNORED_SUFFIXES) for part in path.parts)


def stage_space(
    space_src: str | Path = DEFAULT_SPACE_DIR,
    stage_dir: str | Path | None = None,
    *,
    model_repo_id: str,
    overwrite: bool = False,
) -> Path:
    """Copy the Space's files (no caches) into `stage_dir` with README metadata `models: [model_repo_id]`."""
    from huggingface_hub import SpaceCard

    check_repo_id(model_repo_id)
    space_src = Path(space_src)
    if stage_dir is None:
        raise PublishError("stage_space needs a stage_dir (e.g. runs/demo/hub/space).")
    readme = space_src / README
    if not space_src.is_dir() or not readme.is_file():
        raise PublishError(
            f"Space folder {space_src} {'has no README.md' if space_src.is_dir() else 'does not exist'}; a Space "
            "needs a README.md with its metadata (sdk, app_file). Pass the folder of the Gradio app (spaces/cancernet)."
        )
    card = SpaceCard.load(readme)
    if card.data.get("sdk") not in ("gradio", "docker", "static"):
        raise PublishError(
            f"{readme} metadata has sdk={card.data.get('sdk')!r}; a Space needs gradio, docker or static."
        )
    app_file = card.data.get("app_file") or "app.py"
    if card.data.get("sdk") == "gradio" and not (space_src / app_file).is_file():
        raise PublishError(f"{readme} names app_file {app_file!r}, which is not in {space_src}.")
    stage = _prepare_stage_dir(Path(stage_dir), overwrite=overwrite, sources=[space_src])
    for path in sorted(space_src.rglob("*")):
        rel = path.relative_to(space_src)
        if path.is_dir() or _space_ignored(rel) or path.is_symlink():
            continue
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, stage / rel)
    card.data.models = [model_repo_id]
    card.save(stage / README)
    logger.info("Staged the Space from %s in %s (models: %s)", space_src, stage, model_repo_id)
    return stage


def stage_dataset_card(
    data_dir: str | Path,
    stage_dir: str | Path,
    *,
    repo_id: str,
    taxonomy: Taxonomy = MULTI_CANCER,
    split_file: str | Path | None = None,
    pretty_name: str | None = None,
    license: str = "unknown",  # noqa: A002 - the Hub's metadata key
    overwrite: bool = False,
) -> Path:
    """Stage the card (README.md, plus split.json when given) of a dataset repo for the user's copy of the data.

    Counts come from scanning `data_dir` (without decoding images). The images themselves are large: upload
    them to the same repo with `hf upload-large-folder REPO DATA_DIR --repo-type dataset`.
    """
    from ..data.folder import scan_folder

    check_repo_id(repo_id)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise PublishError(
            f"Dataset folder {data_dir} does not exist; pass the folder holding the class folders."
        )
    scan = scan_folder(data_dir, taxonomy, check_images=False, progress=False)
    split = None
    if split_file is not None:
        split = json.loads(Path(split_file).read_text(encoding="utf-8"))
    synthetic = (Path(scan.root) / SYNTH_MANIFEST_FILE).is_file() or (
        data_dir / SYNTH_MANIFEST_FILE
    ).is_file()
    card = render_dataset_card(
        dict(scan.counts_sub),
        pretty_name=pretty_name or repo_id.split("/")[-1],
        taxonomy=taxonomy,
        split=split,
        synthetic=synthetic,
        license=license,
        bad_files=len(scan.bad_files),
        layout=getattr(scan, "layout", None),
    )
    stage = _prepare_stage_dir(Path(stage_dir), overwrite=overwrite, sources=[data_dir])
    card.save(stage / README)
    if split_file is not None:
        shutil.copy2(split_file, stage / SPLIT_FILE)
    return stage


# ---- upload ------------------------------------------------------------------------------------------


def _resolve_token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise PublishError(
            "No Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access), then push "
            "again; or stage only with --dry-run."
        )
    return token


def publish(
    stage_dir: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    token: str | None = None,
    api=None,
    commit_message: str | None = None,
    space_variables: dict[str, str] | None = None,
) -> str:
    """Create the repo (if needed) and upload the staged folder exactly; return the commit URL.

    Remote files that are not in the staged folder are deleted, so the repo mirrors the stage. A model
    card's `revision="<commit-sha>"` placeholder is then pinned to the uploaded commit (one more commit
    touching README.md only; the staged README is updated to match).
    """
    from huggingface_hub import HfApi, SpaceCard
    from huggingface_hub.errors import HfHubHTTPError

    check_repo_id(repo_id)
    if repo_type not in REPO_TYPES:
        raise PublishError(f"Unknown repo type {repo_type!r}; use one of {list(REPO_TYPES)}.")
    stage = Path(stage_dir)
    if not (stage / README).is_file():
        raise PublishError(
            f"{stage} holds no README.md, so it is not a staged repo; stage it first (cancernet push --dry-run)."
        )
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise PublishError(
            "HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it (or use --dry-run to stage only)."
        )
    token = _resolve_token(token)
    api = api or HfApi(token=token)
    try:
        user = api.whoami(token=token)
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise PublishError(
            f"The Hub at {api.endpoint} rejected the token (HTTP {status}); create a write token at "
            "https://huggingface.co/settings/tokens and set HF_TOKEN or run `hf auth login`."
        ) from e
    except OSError as e:  # connection refused, DNS, TLS (httpx errors are not OSError: see below)
        raise HubUnreachableError(
            f"Cannot reach the Hub at {api.endpoint} ({e}); check the network or HF_ENDPOINT."
        ) from e
    except Exception as e:
        if type(e).__module__.split(".")[0] not in ("httpx", "httpx2", "httpcore", "requests", "urllib3"):
            raise
        raise HubUnreachableError(
            f"Cannot reach the Hub at {api.endpoint} ({type(e).__name__}: {e}); check the network or HF_ENDPOINT."
        ) from e
    create_kwargs = {}
    variables = dict(space_variables or {})
    if repo_type == "space":
        meta = SpaceCard.load(stage / README).data
        create_kwargs["space_sdk"] = meta.get("sdk")
        models = meta.get("models") or []
        if models:
            variables.setdefault(ENV_MODEL, models[0])
    elif variables:
        raise PublishError(f"space_variables only apply to Spaces, not to a {repo_type} repo.")
    try:
        url = api.create_repo(
            repo_id, repo_type=repo_type, private=private, exist_ok=True, token=token, **create_kwargs
        )
        for key, value in variables.items():  # also updates the variables of an existing Space
            api.add_space_variable(repo_id, key, value, token=token)
        logger.info("Uploading %s to %s as %s", stage, url, user.get("name", "?"))
        info = api.upload_folder(
            folder_path=stage,
            repo_id=repo_id,
            repo_type=repo_type,
            token=token,
            commit_message=commit_message or f"Upload {repo_id.split('/')[-1]} with cancernet push",
            delete_patterns="*",
        )
        commit_url = info.commit_url
        readme = stage / README
        text = readme.read_text(encoding="utf-8")
        if repo_type == "model" and f'revision="{REVISION_PLACEHOLDER}"' in text:
            readme.write_text(text.replace(REVISION_PLACEHOLDER, info.oid), encoding="utf-8")
            api.upload_file(
                path_or_fileobj=readme,
                path_in_repo=README,
                repo_id=repo_id,
                repo_type=repo_type,
                token=token,
                commit_message=f"Pin the usage snippet to commit {info.oid[:10]}",
            )
    except HfHubHTTPError as e:
        raise PublishError(f"Uploading {stage} to {repo_id} ({repo_type}) failed: {e}") from e
    logger.info("Uploaded %s: %s", repo_id, commit_url)
    return commit_url


# ---- one call for the CLI ----------------------------------------------------------------------------


def default_stage_dir(model_dir: str | Path, repo_id: str) -> Path:
    """runs/<run>/hub/<name> for runs/<run>/ensemble and runs/<run>/members/<member>."""
    model_dir = Path(model_dir).resolve()
    run_dir = model_dir.parent.parent if model_dir.parent.name == MEMBERS_SUBDIR else model_dir.parent
    return run_dir / HUB_SUBDIR / repo_id.split("/")[-1]


def default_report_dir(model_dir: str | Path) -> Path | None:
    """runs/<run>/reports/<model folder name> when it holds a report, else None."""
    model_dir = Path(model_dir).resolve()
    run_dir = model_dir.parent.parent if model_dir.parent.name == MEMBERS_SUBDIR else model_dir.parent
    candidate = run_dir / REPORTS_SUBDIR / model_dir.name
    return candidate if (candidate / METRICS_FILE).is_file() else None


@dataclass
class PushResult:
    """What `push_model` staged and (unless dry-run) uploaded."""

    repo_id: str
    stage_dir: Path
    kind: str
    commit_url: str | None = None
    space_id: str | None = None
    space_stage_dir: Path | None = None
    space_commit_url: str | None = None
    private: bool = False
    commands: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"staged {self.kind} repo {self.repo_id}: {self.stage_dir} ({len(_listing(self.stage_dir))} files)"
        ]
        if self.space_stage_dir is not None:
            lines.append(f"staged Space {self.space_id}: {self.space_stage_dir}")
        if self.commit_url:
            lines.append(f"uploaded: {self.commit_url}")
        if self.space_commit_url:
            lines.append(f"uploaded Space: {self.space_commit_url}")
        if self.commands:
            lines.append("dry run: nothing was uploaded. Read the staged folders, then upload them with:")
            lines += [f"  {c}" for c in self.commands]
        return "\n".join(lines)


def push_model(
    model_dir: str | Path,
    repo_id: str,
    *,
    kind: str | None = None,
    report_dir: str | Path | None = None,
    stage_dir: str | Path | None = None,
    private: bool = False,
    dry_run: bool = False,
    overwrite: bool = False,
    space_id: str | None = None,
    space_src: str | Path = DEFAULT_SPACE_DIR,
    space_stage_dir: str | Path | None = None,
    taxonomy: Taxonomy = MULTI_CANCER,
    license: str = DEFAULT_LICENSE,  # noqa: A002 - the Hub's metadata key
    dataset_id: str | None = None,
    base_models: Sequence[str] | None = None,
    member_repo_ids: Sequence[str] = (),
    token: str | None = None,
) -> PushResult:
    """`cancernet push`: stage the model repo (and the Space), then upload unless `dry_run`."""
    check_repo_id(repo_id)
    if space_id is not None:
        check_repo_id(space_id)
    if not Path(model_dir).is_dir():
        raise PublishError(
            f"Model folder {model_dir} does not exist; pass the output folder of a training run."
        )
    kind = kind or detect_kind(model_dir)
    if not dry_run:
        _resolve_token(token)  # fail before staging gigabytes
    if report_dir is None:
        report_dir = default_report_dir(model_dir)
        if report_dir is not None:
            logger.info("Using the evaluation report in %s", report_dir)
    stage = stage_model_repo(
        model_dir,
        stage_dir or default_stage_dir(model_dir, repo_id),
        kind=kind,
        repo_id=repo_id,
        report_dir=report_dir,
        taxonomy=taxonomy,
        license=license,
        dataset_id=dataset_id,
        base_models=base_models,
        member_repo_ids=member_repo_ids,
        overwrite=overwrite,
    )
    result = PushResult(repo_id=repo_id, stage_dir=stage, kind=kind, private=private)
    if space_id is not None:
        result.space_id = space_id
        result.space_stage_dir = stage_space(
            space_src,
            space_stage_dir or stage.parent / space_id.split("/")[-1],
            model_repo_id=repo_id,
            overwrite=overwrite,
        )
    private_flag = " --private" if private else ""
    if dry_run:
        result.commands.append(f"cancernet push --staged {stage} --repo-id {repo_id}{private_flag}")
        if result.space_stage_dir is not None:
            result.commands.append(
                f"cancernet push --staged {result.space_stage_dir} --repo-id {space_id} --repo-type space{private_flag}"
            )
        return result
    result.commit_url = publish(stage, repo_id, repo_type="model", private=private, token=token)
    if result.space_stage_dir is not None:
        # The Space loads the model by id, pinned to the commit just uploaded (its remote code included).
        revision = result.commit_url.rstrip("/").rsplit("/", 1)[-1]
        result.space_commit_url = publish(
            result.space_stage_dir,
            space_id,
            repo_type="space",
            private=private,
            token=token,
            space_variables={ENV_MODEL: repo_id, ENV_MODEL_REVISION: revision},
        )
    return result


__all__ = [
    "PushResult",
    "check_repo_id",
    "default_stage_dir",
    "expected_model_files",
    "publish",
    "push_model",
    "stage_dataset_card",
    "stage_model_repo",
    "stage_space",
]
