"""Model and dataset cards generated from a run's files, never typed by hand.

Three layers, so the metadata is testable without network or templates:

- `read_run(model_dir, report_dir=...)` reads what a card is made of (config, metrics, run config,
  trainer state, split manifest, ensemble fit) into a `RunFiles`;
- `build_card_data(metrics, ...)` is pure: the YAML metadata (`ModelCardData` with `model-index`
  eval results from `metrics.json`);
- `render_model_card(run, ...)` / `render_dataset_card(...)` fill the Jinja templates of
  `model_cards/` through `ModelCard.from_template` / `DatasetCard.from_template`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData

from ..constants import (
    DEMO_DATA_NOTICE,
    ENSEMBLE_META_FILE,
    METRICS_FILE,
    PIPELINE_TASK,
    RUN_CONFIG_FILE,
    SPLIT_FILE,
    SPLITS,
    SYNTH_MANIFEST_FILE,
)
from ..errors import PublishError
from ..taxonomy import MULTI_CANCER, Taxonomy

logger = logging.getLogger(__name__)

KINDS = ("ensemble", "member")
TRAINER_STATE_FILE = "trainer_state.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
CONFIG_FILE = "config.json"
# The usage snippet pins this; `publish` replaces it with the commit it uploaded.
REVISION_PLACEHOLDER = "<commit-sha>"
# Weights trained on several public medical datasets with their own terms: non-commercial by default.
DEFAULT_LICENSE = "cc-by-nc-4.0"
ENV_TEMPLATES = "CANCERNET_CARD_TEMPLATES"
TEMPLATE_FILES = {"member": "member_card.md", "ensemble": "ensemble_card.md", "dataset": "dataset_card.md"}
COMMON_TEMPLATE = "_common.md"

# Citation of the dataset a built-in taxonomy describes (custom taxonomies bring none).
DATASET_CITATIONS = {
    "multi-cancer": {
        "name": "Multi Cancer Dataset (Kaggle)",
        "url": "https://www.kaggle.com/datasets/obulisainaren/multi-cancer",
        "bibtex": (
            "@misc{naren2022multicancer,\n"
            "  author       = {Obuli Sai Naren},\n"
            "  title        = {Multi Cancer Dataset},\n"
            "  year         = {2022},\n"
            "  howpublished = {Kaggle},\n"
            "  url          = {https://www.kaggle.com/datasets/obulisainaren/multi-cancer}\n"
            "}"
        ),
    }
}

# metrics.json key -> (model-index metric type, readable name, metric config)
_METRIC_KEYS = (
    ("accuracy", "accuracy", "accuracy", None),
    ("macro_f1", "f1", "macro F1", "macro"),
    ("balanced_accuracy", "balanced_accuracy", "balanced accuracy", None),
)
# Hyper-parameters shown in the card, in this order, when the run config has them.
_HYPER_PARAMETERS = (
    "model_name_or_path",
    "loop",
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "optim",
    "weight_decay",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "label_smoothing_factor",
    "mixup_alpha",
    "cutmix_alpha",
    "ema_decay",
    "layer_decay",
    "augment",
    "metric_for_best_model",
    "seed",
    "mixed_precision",
    "fp16",
    "bf16",
    "num_processes",
    "processes",
    "global_batch",
    "distributed_type",
    "world_size",
    "device",
    "hardware",
    "gpu",
    "torch_version",
    "transformers_version",
    "torch",
    "transformers",
    "accelerate",
)


@dataclass
class RunFiles:
    """What a model card is generated from, read from a model folder and its evaluation report."""

    model_dir: Path
    kind: str
    config: dict
    metrics: dict  # normalised to the evaluation report schema (see `normalise_metrics`)
    metrics_file: Path
    taxonomy: Taxonomy
    preprocessor: dict = field(default_factory=dict)
    report_dir: Path | None = None
    plots: dict[str, Path] = field(default_factory=dict)  # plot name -> file
    run_config: dict | None = None
    trainer_state: dict | None = None
    split: dict | None = None
    split_file: Path | None = None
    ensemble_meta: dict | None = None
    member_runs: list[dict] = field(default_factory=list)  # run_config.json of each member (ensemble)
    synthetic: bool = False

    @property
    def name(self) -> str:
        return self.model_dir.name


# ---- reading a run -----------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise PublishError(f"{what} {path} does not exist.") from e
    except json.JSONDecodeError as e:
        raise PublishError(f"{what} {path} is not valid JSON ({e}); regenerate it.") from e
    if not isinstance(data, dict):
        raise PublishError(f"{what} {path} must hold a JSON object, got {type(data).__name__}.")
    return data


def _optional_json(path: Path, what: str) -> dict | None:
    return _read_json(path, what) if path.is_file() else None


def detect_kind(model_dir: str | Path) -> str:
    """'ensemble' when the folder holds the ensemble's fit results or remote code, else 'member'."""
    model_dir = Path(model_dir)
    config = _optional_json(model_dir / CONFIG_FILE, "Model config") or {}
    if (model_dir / ENSEMBLE_META_FILE).is_file() or "auto_map" in config:
        return "ensemble"
    return "member"


def normalise_metrics(raw: dict, *, source: Path | str = METRICS_FILE) -> dict:
    """Metrics in the evaluation report schema, from a report or from a training run's metrics.json.

    A report (`cancernet evaluate`) already has `sub`/`main` dicts. A training run's metrics.json holds
    `classification_scores` keys (`sub_accuracy`, `main_macro_f1`, ...) per split, nested (`{"test":
    {...}}`) or prefixed (`test_sub_accuracy`); the test split is preferred, validation otherwise.
    """
    if isinstance(raw.get("sub"), dict) and isinstance(raw.get("main"), dict):
        out = dict(raw)
        out.setdefault("split", "test")
        return out
    common = {
        k: raw.get(k)
        for k in ("model", "model_kind", "split_protocol", "synthetic_data", "notice")
        if k in raw
    }
    for split in ("test", "validation"):  # a training run's blocks: {"test": {"num_images", "sub", "main"}}
        block = raw.get(split)
        if (
            isinstance(block, dict)
            and isinstance(block.get("sub"), dict)
            and isinstance(block.get("main"), dict)
        ):
            return {**common, "split": split, **block}
    for split in ("test", "eval", "validation"):
        scores = raw.get(split) if isinstance(raw.get(split), dict) else None
        if scores is None:
            prefix = f"{split}_"
            scores = {k[len(prefix) :]: v for k, v in raw.items() if k.startswith(prefix)}
        levels = {
            level: {
                key: float(scores[f"{level}_{key}"]) for key, *_ in _METRIC_KEYS if f"{level}_{key}" in scores
            }
            for level in ("sub", "main")
        }
        if levels["sub"] and levels["main"]:
            return {
                "model": raw.get("model"),
                "model_kind": raw.get("model_kind"),
                "split": "validation" if split == "eval" else split,
                "split_protocol": raw.get("split_protocol"),
                "num_images": scores.get("num_images", raw.get(f"{split}_num_images")),
                "synthetic_data": bool(raw.get("synthetic_data", False)),
                "notice": raw.get("notice"),
                **levels,
            }
    raise PublishError(
        f"{source} holds no sub- and main-class scores (expected a `cancernet evaluate` report with 'sub' and "
        "'main', or a training run's test_/validation scores); evaluate the model with `cancernet evaluate "
        "--model DIR --output-dir REPORT` and pass --report REPORT."
    )


def _split_file_synthetic(split: dict | None, run_config: dict | None) -> bool:
    """Whether the run's data folder carries the synthetic-data manifest."""
    candidates = []
    for data in (split or {}, _flatten(run_config or {})):
        for key in ("data_dir", "root", "data_root"):
            if isinstance(data.get(key), str):
                candidates.append(Path(data[key]))
    return any((c / SYNTH_MANIFEST_FILE).is_file() for c in candidates)


def read_run(
    model_dir: str | Path,
    *,
    kind: str | None = None,
    report_dir: str | Path | None = None,
    taxonomy: Taxonomy | None = None,
) -> RunFiles:
    """Read a member or ensemble folder (and its evaluation report) into a `RunFiles`."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise PublishError(
            f"Model folder {model_dir} does not exist; pass the output folder of a training run."
        )
    kind = kind or detect_kind(model_dir)
    if kind not in KINDS:
        raise PublishError(f"Unknown model kind {kind!r}; use one of {list(KINDS)}.")
    config = _read_json(model_dir / CONFIG_FILE, "Model config")
    taxonomy = taxonomy or MULTI_CANCER
    _check_labels(config, taxonomy, model_dir)

    report_dir = Path(report_dir) if report_dir is not None else None
    metrics_file = (report_dir or model_dir) / METRICS_FILE
    if not metrics_file.is_file():
        raise PublishError(
            f"No {METRICS_FILE} in {report_dir or model_dir}: a card reports evaluation results. Evaluate the "
            f"model with `cancernet evaluate` and pass its output folder as --report."
        )
    metrics = normalise_metrics(_read_json(metrics_file, "Metrics file"), source=metrics_file)
    if metrics.get("model_kind") and metrics["model_kind"] != kind:
        raise PublishError(
            f"{metrics_file} evaluates a {metrics['model_kind']}, but {model_dir} is pushed as a {kind}; pass the "
            f"report of this model (or --kind {metrics['model_kind']})."
        )
    plots = {}
    for name, rel in (metrics.get("plots") or {}).items():
        path = (metrics_file.parent / rel).resolve()
        if not path.is_file():
            raise PublishError(f"{metrics_file} lists plot {name!r} at {rel}, which does not exist.")
        plots[name] = path

    run_config = _optional_json(model_dir / RUN_CONFIG_FILE, "Run config")
    split_file = model_dir / SPLIT_FILE
    split = _optional_json(split_file, "Split manifest")
    ensemble_meta = _optional_json(model_dir / ENSEMBLE_META_FILE, "Ensemble metadata")
    if kind == "ensemble" and ensemble_meta is None:
        raise PublishError(
            f"{model_dir} has no {ENSEMBLE_META_FILE}, so it is not a CancerNet ensemble folder; build one with "
            "`cancernet ensemble build`, or push this folder with --kind member."
        )
    if split is None and ensemble_meta:
        # The ensemble records the manifest it was fitted with: {"split": {"file": ..., "protocol": ...}}.
        recorded = ensemble_meta.get("split") if isinstance(ensemble_meta.get("split"), dict) else {}
        candidate = recorded.get("file") or ensemble_meta.get("split_file")
        if isinstance(candidate, str) and Path(candidate).is_file():
            split_file, split = Path(candidate), _read_json(Path(candidate), "Split manifest")
    member_runs = []
    for member in _members_meta(ensemble_meta):
        folder = _member_folder(member)
        if folder is not None and (folder / RUN_CONFIG_FILE).is_file():
            member_runs.append(
                {"name": member.get("name"), **_read_json(folder / RUN_CONFIG_FILE, "Run config")}
            )

    synthetic = bool(
        metrics.get("synthetic_data")
        or (ensemble_meta or {}).get("synthetic_data")
        or (run_config or {}).get("synthetic_data")
        or (split or {}).get("synthetic_data")
        or _split_file_synthetic(split, run_config)
    )
    return RunFiles(
        model_dir=model_dir,
        kind=kind,
        config=config,
        metrics=metrics,
        metrics_file=metrics_file,
        taxonomy=taxonomy,
        preprocessor=_optional_json(model_dir / PREPROCESSOR_FILE, "Image processor config") or {},
        report_dir=report_dir,
        plots=plots,
        run_config=run_config,
        trainer_state=_optional_json(model_dir / TRAINER_STATE_FILE, "Trainer state"),
        split=split,
        split_file=split_file if split is not None else None,
        ensemble_meta=ensemble_meta,
        member_runs=member_runs,
        synthetic=synthetic,
    )


def _check_labels(config: dict, taxonomy: Taxonomy, model_dir: Path) -> None:
    id2label = config.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)] if id2label else []
    if labels != taxonomy.sub_names:
        raise PublishError(
            f"{model_dir / CONFIG_FILE} labels {labels[:4]}... ({len(labels)}) are not the sub-classes of taxonomy "
            f"{taxonomy.name!r} ({taxonomy.num_sub}); pass the taxonomy the model was trained with (--taxonomy)."
        )


def _members_meta(ensemble_meta: dict | None) -> list[dict]:
    members = (ensemble_meta or {}).get("members") or []
    out = []
    for m in members:
        out.append(m if isinstance(m, dict) else {"name": str(m), "path": str(m)})
    return out


def _member_folder(member: dict) -> Path | None:
    """The local training folder an ensemble member came from, when it still exists."""
    for key in ("path", "source"):
        value = member.get(key)
        if isinstance(value, str) and Path(value).is_dir():
            return Path(value)
    return None


def _flatten(data: dict, prefix: str = "") -> dict:
    """Nested run-config sections flattened to their leaf keys (the first occurrence of a key wins)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for k, v in _flatten(value).items():
                out.setdefault(k, v)
        else:
            out.setdefault(key, value)
    return out


# ---- pure: metadata ----------------------------------------------------------------------------------


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def build_eval_results(
    metrics: dict, *, taxonomy: Taxonomy, dataset_id: str, dataset_name: str
) -> list[EvalResult]:
    """One `EvalResult` per reported score (sub- and main-class accuracy, macro-F1, balanced accuracy, ECE)."""
    split = metrics.get("split") or "test"
    protocol = metrics.get("split_protocol")

    def result(metric_type: str, name: str, value: float, config: str | None = None) -> EvalResult:
        return EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=dataset_id,
            dataset_name=dataset_name,
            dataset_split=split,
            dataset_args={"split_protocol": protocol} if protocol else None,
            metric_type=metric_type,
            metric_name=f"{split.capitalize()} {name}",
            metric_config=config,
            metric_value=round(value, 4),
        )

    results = []
    for level, count in (("sub", taxonomy.num_sub), ("main", taxonomy.num_main)):
        scores = metrics.get(level) or {}
        level_name = "sub-class" if level == "sub" else "main-class"
        for key, metric_type, readable, metric_config in _METRIC_KEYS:
            value = _number(scores.get(key))
            if value is not None:
                name = f"{level_name} {readable} ({count} classes)"
                results.append(result(metric_type, name, value, metric_config))
    ece = _number((metrics.get("calibration") or {}).get("ece"))
    if ece is not None:
        results.append(result("ece", "sub-class expected calibration error", ece))
    if not results:
        raise PublishError("metrics.json holds no finite sub- or main-class score to report in the card.")
    return results


def build_card_data(
    metrics: dict,
    *,
    kind: str,
    model_name: str,
    taxonomy: Taxonomy = MULTI_CANCER,
    base_models: list[str] | tuple[str, ...] = (),
    license: str = DEFAULT_LICENSE,  # noqa: A002 - the Hub's metadata key
    dataset_id: str | None = None,
    dataset_name: str | None = None,
    synthetic: bool = False,
) -> ModelCardData:
    """The card's YAML metadata, from metrics.json and the run; pure (no files, no network)."""
    if kind not in KINDS:
        raise PublishError(f"Unknown model kind {kind!r}; use one of {list(KINDS)}.")
    dataset_id = dataset_id or (f"{taxonomy.name}-synthetic-demo" if synthetic else taxonomy.name)
    dataset_name = dataset_name or _dataset_title(taxonomy, synthetic)
    modalities = sorted({s.modality for s in taxonomy.sub_classes})
    tags = ["medical", "histopathology", "image-classification", "cancer", "vision"]
    tags += [_MODALITY_TAGS.get(m, _slug(m)) for m in modalities]
    tags = list(dict.fromkeys(tags))
    if kind == "ensemble":
        tags += ["custom_code", "ensemble", PIPELINE_TASK]
    if synthetic:
        tags.append("synthetic-data")
    bases = list(dict.fromkeys(base_models))
    return ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag="image-classification",
        license=license,
        datasets=[dataset_id],
        metrics=["accuracy", "f1"],
        base_model=(bases[0] if len(bases) == 1 else bases) or None,
        tags=tags,
        eval_results=build_eval_results(
            metrics, taxonomy=taxonomy, dataset_id=dataset_id, dataset_name=dataset_name
        ),
    )


_MODALITY_TAGS = {
    "blood smear": "hematology",
    "MRI": "mri",
    "CT": "ct",
    "Pap cytology": "cytology",
    "H&E histopathology": "histopathology",
}


def _slug(text: str) -> str:
    text = text.lower().replace("&", " and ")
    return "-".join(w for w in text.replace("/", " ").split() if w) or "other"


def _dataset_title(taxonomy: Taxonomy, synthetic: bool) -> str:
    base = DATASET_CITATIONS.get(taxonomy.name, {}).get("name", f"{taxonomy.name} image folder")
    return f"Synthetic demo data in the layout of the {base}" if synthetic else base


def hub_base_models(sources: list[str | None]) -> list[str]:
    """The members' starting checkpoints that are Hub ids (presets and local folders are not)."""
    out = []
    for source in sources:
        if not source or "/" not in source or Path(source).exists() or source.startswith((".", "/", "~")):
            continue
        if len(source.split("/")) == 2:
            out.append(source)
    return out


# ---- pure: template context --------------------------------------------------------------------------


def _split_tables(split: dict | None, taxonomy: Taxonomy) -> dict:
    """Images and near-duplicate groups per class and split, from the split manifest's files."""
    files = (split or {}).get("files") or {}
    if not isinstance(files, dict) or not files:
        return {"rows": [], "totals": {}, "groups": {}, "num_images": 0}
    counts: Counter = Counter()
    groups: dict[str, set] = {s: set() for s in SPLITS}
    for rel, entry in files.items():
        entry = entry if isinstance(entry, dict) else {"split": entry}
        name = entry.get("sub") if entry.get("sub") in taxonomy.sub_names else _sub_of(rel, taxonomy)
        counts[(name, entry.get("split"))] += 1
        if entry.get("group") is not None and entry.get("split") in groups:
            groups[entry["split"]].add(entry["group"])
    rows = []
    for sub in taxonomy.sub_classes:
        per = {s: counts[(sub.name, s)] for s in SPLITS}
        rows.append(
            {
                "name": sub.name,
                "human_name": sub.human_name,
                "main": sub.main,
                "modality": sub.modality,
                **per,
            }
        )
    totals = {s: sum(r[s] for r in rows) for s in SPLITS}
    return {
        "rows": rows,
        "totals": totals,
        "groups": {s: len(g) for s, g in groups.items() if g},
        "num_images": sum(totals.values()),
    }


def _sub_of(rel: str, taxonomy: Taxonomy) -> str | None:
    for part in reversed(PurePosixPath(rel).parts[:-1]):
        name = taxonomy.resolve_folder(part)
        if name in taxonomy.sub_names:
            return name
    return None


def _hyper_parameters(run_config: dict | None, trainer_state: dict | None) -> dict:
    flat = _flatten(run_config or {})
    shown = [k for k in _HYPER_PARAMETERS if k not in ("fp16", "bf16")]  # both go into the precision row
    rows = [(k, flat[k]) for k in shown if k in flat and flat[k] not in (None, "", [])]
    per_device = _number(flat.get("per_device_train_batch_size"))
    accumulation = _number(flat.get("gradient_accumulation_steps")) or 1
    processes = _number(flat.get("num_processes") or flat.get("processes") or flat.get("world_size")) or 1
    effective = int(per_device * accumulation * processes) if per_device else None
    rows = [(k, v) for k, v in rows if not (k == "global_batch" and effective == v)]
    precision = flat.get("mixed_precision")
    if precision in (None, "", "no"):
        precision = (
            "bf16" if flat.get("bf16") else "fp16" if flat.get("fp16") else "fp32 (no mixed precision)"
        )
    state = trainer_state or {}
    history = state.get("log_history") or []
    train_losses = [h["loss"] for h in history if isinstance(h, dict) and _number(h.get("loss")) is not None]
    final = next((h for h in reversed(history) if isinstance(h, dict) and "train_runtime" in h), {})
    return {
        "rows": [{"name": k, "value": v} for k, v in rows],
        "effective_batch_size": effective,
        "precision": precision,
        "trainer": {
            "global_step": state.get("global_step"),
            "epoch": state.get("epoch"),
            "best_metric": state.get("best_metric"),
            "best_model_checkpoint": Path(state["best_model_checkpoint"]).name
            if state.get("best_model_checkpoint")
            else None,
            "final_train_loss": round(float(train_losses[-1]), 4) if train_losses else None,
            "train_runtime_s": round(float(final["train_runtime"]), 1)
            if _number(final.get("train_runtime"))
            else None,
        },
    }


def _members_context(run: RunFiles) -> list[dict]:
    if run.kind != "ensemble":
        return []
    cfg = run.config
    names = cfg.get("member_names") or [m.get("name") for m in _members_meta(run.ensemble_meta)]
    weights = cfg.get("member_weights") or []
    total = sum(weights) or 1.0
    temperatures = cfg.get("member_temperatures") or []
    configs = cfg.get("member_configs") or []
    sizes = cfg.get("member_image_sizes") or []
    meta = {m.get("name"): m for m in _members_meta(run.ensemble_meta)}
    starts = {r.get("name"): _flatten(r).get("model_name_or_path") for r in run.member_runs}
    out = []
    for i, name in enumerate(names):
        member_meta = meta.get(name, {})
        source = starts.get(name) or member_meta.get("model_name_or_path")
        if source is None and _member_folder(member_meta) is None:
            source = member_meta.get("source")  # a Hub id or a folder that is gone
        out.append(
            {
                "name": name,
                "architecture": (configs[i].get("architectures") or [configs[i].get("model_type")])[0]
                if i < len(configs)
                else None,
                "weight": round(weights[i] / total, 4) if i < len(weights) else None,
                "temperature": round(float(temperatures[i]), 4) if i < len(temperatures) else None,
                "image_size": "x".join(str(v) for v in sizes[i]) if i < len(sizes) else None,
                "source": source,
            }
        )
    return out


_PLOT_TITLES = {
    "confusion_sub": "Confusion matrix (sub-classes, row-normalised)",
    "confusion_main": "Confusion matrix (main classes, row-normalised)",
    "confusion_matrix": "Confusion matrix",
    "reliability": "Reliability diagram",
    "reliability_diagram": "Reliability diagram",
    "per_class_f1": "Per-class F1",
    "risk_coverage": "Risk-coverage curve",
}


def _plot_title(name: str) -> str:
    return _PLOT_TITLES.get(name) or name.replace("_", " ").replace("-", " ").strip().capitalize()


def build_card_context(
    run: RunFiles,
    *,
    repo_id: str,
    card_data: ModelCardData,
    plot_paths: dict[str, str] | None = None,
    member_repo_ids: list[str] | tuple[str, ...] = (),
) -> dict:
    """Template variables of a model card, computed from the run (pure given `run`)."""
    taxonomy, metrics = run.taxonomy, run.metrics
    per_class = metrics.get("per_class") or {}
    per_class_rows = [
        {"name": name, "human_name": taxonomy.sub(name).human_name, **per_class[name]}
        for name in taxonomy.sub_names
        if isinstance(per_class.get(name), dict)
    ]
    sources = []
    for main in taxonomy.main_names:
        modalities = sorted({s.modality for s in taxonomy.sub_classes if s.main == main})
        sources.append(
            {"main": main, "modality": ", ".join(modalities), "source": taxonomy.sources.get(main, "")}
        )
    size = run.preprocessor.get("size") or {}
    image_size = run.config.get("image_size")
    if run.kind == "ensemble" and isinstance(image_size, list):
        input_size = f"{image_size[0]}x{image_size[1]}"
    elif isinstance(size, dict) and size:
        input_size = "x".join(str(size[k]) for k in ("height", "width", "shortest_edge") if k in size)
    else:
        input_size = str(size or image_size or "see preprocessor_config.json")
    ensemble = run.ensemble_meta or {}
    fit = (
        ((ensemble.get("ensemble") or {}).get("validation") or {})
        if isinstance(ensemble.get("ensemble"), dict)
        else {}
    )
    recorded_split = ensemble.get("split") if isinstance(ensemble.get("split"), dict) else {}
    split_protocol = (
        metrics.get("split_protocol") or (run.split or {}).get("protocol") or recorded_split.get("protocol")
    )
    return {
        "repo_id": repo_id,
        "model_name": card_data.model_name,
        "kind": run.kind,
        "synthetic": run.synthetic,
        "notice": metrics.get("notice") or (DEMO_DATA_NOTICE if run.synthetic else None),
        "revision": REVISION_PLACEHOLDER,
        "pipeline_task": PIPELINE_TASK,
        "taxonomy": {
            "name": taxonomy.name,
            "num_sub": taxonomy.num_sub,
            "num_main": taxonomy.num_main,
            "sub_names": taxonomy.sub_names,
            "main_names": taxonomy.main_names,
            "modalities": sorted({s.modality for s in taxonomy.sub_classes}),
            "fixed_orientation": sorted({s.modality for s in taxonomy.sub_classes if not s.dihedral}),
        },
        "sub_main": {s.name: s.main for s in taxonomy.sub_classes},
        "code_files": sorted(p.name for p in run.model_dir.glob("*.py")) if run.kind == "ensemble" else [],
        "dataset_name": card_data.eval_results[0].dataset_name,
        "dataset_id": card_data.datasets[0],
        "license": card_data.license,
        "citation": DATASET_CITATIONS.get(taxonomy.name),
        "sources": sources,
        "input": {
            "size": input_size,
            "mean": run.preprocessor.get("image_mean")
            if run.preprocessor.get("do_normalize", True)
            else None,
            "std": run.preprocessor.get("image_std") if run.preprocessor.get("do_normalize", True) else None,
            "rescale_factor": run.preprocessor.get("rescale_factor"),
            "processor": run.preprocessor.get("image_processor_type"),
        },
        "architecture": (run.config.get("architectures") or [run.config.get("model_type")])[0],
        "members": _members_context(run),
        "member_repo_ids": list(member_repo_ids),
        "ensemble": {
            "uncertainty_threshold": run.config.get("uncertainty_threshold"),
            "uncertainty_quantile": run.config.get("uncertainty_quantile"),
            "nll_before": fit.get("nll_equal_weights_unit_temperature"),
            "nll_after": fit.get("nll"),
            "num_fit_images": ensemble.get("num_validation_images"),
            "fit_split": ensemble.get("fit_split", "validation"),
        },
        "base_models": [card_data.base_model]
        if isinstance(card_data.base_model, str)
        else card_data.base_model or [],
        "split_protocol": split_protocol,
        "split": {
            "seed": (run.split or {}).get("seed"),
            "fractions": (run.split or {}).get("fractions"),
            "threshold": (run.split or {}).get("threshold"),
            **_split_tables(run.split, taxonomy),
        },
        "training": _hyper_parameters(run.run_config, run.trainer_state),
        "member_runs": [
            {"name": r.get("name"), **_hyper_parameters(r, None)}
            for r in run.member_runs
            if isinstance(r, dict)
        ],
        "eval": {
            "split": metrics.get("split") or "test",
            "num_images": metrics.get("num_images"),
            "levels": [
                {
                    "name": "Sub-class",
                    "count": taxonomy.num_sub,
                    **_SCORE_KEYS,
                    **_rounded(metrics.get("sub")),
                },
                {
                    "name": "Main class",
                    "count": taxonomy.num_main,
                    **_SCORE_KEYS,
                    **_rounded(metrics.get("main")),
                },
            ],
            "per_class": [_rounded(r) for r in per_class_rows],
            "calibration": {**_CALIBRATION_KEYS, **_rounded(metrics.get("calibration"))},
            "aurc": _round(metrics.get("aurc")),
            "plots": [{"name": n, "title": _plot_title(n), "path": p} for n, p in (plot_paths or {}).items()],
        },
    }


# Keys the templates test with `is not none`: present (None) even when a metrics file lacks them.
_SCORE_KEYS = dict.fromkeys(("accuracy", "macro_f1", "balanced_accuracy"))
_CALIBRATION_KEYS = dict.fromkeys(("ece", "ece_after_temperature", "temperature", "nll"))


def _round(value, digits: int = 4):
    number = _number(value)
    if number is None:
        return value
    return int(number) if isinstance(value, int) else round(number, digits)


def _rounded(data: dict | None) -> dict:
    return {k: _round(v) for k, v in (data or {}).items()}


# ---- rendering ---------------------------------------------------------------------------------------


def template_dir() -> Path:
    """Where the card templates are: $CANCERNET_CARD_TEMPLATES, the source tree, or an installed copy."""
    candidates = [
        Path(os.environ[ENV_TEMPLATES]) if os.environ.get(ENV_TEMPLATES) else None,
        Path(__file__).resolve().parents[2] / "model_cards",  # source checkout / editable install
        Path(__file__).resolve().parent / "model_cards",  # wheel that packs the templates in the package
        Path(sys.prefix) / "share" / "cancernet-hf" / "model_cards",  # wheel with data-files
    ]
    for candidate in candidates:
        if candidate is not None and (candidate / TEMPLATE_FILES["member"]).is_file():
            return candidate
    raise PublishError(
        f"Card templates not found (looked in {[str(c) for c in candidates if c]}); set {ENV_TEMPLATES} to the "
        "project's model_cards/ folder."
    )


def _template(kind: str) -> str:
    folder = template_dir()
    common = folder / COMMON_TEMPLATE
    # Shared macros first: plain jinja2.Template (what from_template uses) has no loader for imports.
    prefix = common.read_text(encoding="utf-8") if common.is_file() else ""
    return prefix + (folder / TEMPLATE_FILES[kind]).read_text(encoding="utf-8")


def render_model_card(
    run: RunFiles,
    *,
    repo_id: str,
    license: str = DEFAULT_LICENSE,  # noqa: A002 - the Hub's metadata key
    dataset_id: str | None = None,
    base_models: list[str] | tuple[str, ...] | None = None,
    plot_paths: dict[str, str] | None = None,
    member_repo_ids: list[str] | tuple[str, ...] = (),
) -> ModelCard:
    """The README.md of a member or ensemble repo, rendered from the run's files."""
    if base_models is None:
        sources = [m.get("source") for m in _members_context(run)] if run.kind == "ensemble" else []
        sources.append(_flatten(run.run_config or {}).get("model_name_or_path"))
        base_models = hub_base_models([*member_repo_ids, *sources])
    card_data = build_card_data(
        run.metrics,
        kind=run.kind,
        model_name=repo_id.split("/")[-1],
        taxonomy=run.taxonomy,
        base_models=base_models,
        license=license,
        dataset_id=dataset_id,
        synthetic=run.synthetic,
    )
    context = build_card_context(
        run, repo_id=repo_id, card_data=card_data, plot_paths=plot_paths, member_repo_ids=member_repo_ids
    )
    return ModelCard.from_template(card_data, template_str=_template(run.kind), **context)


def dataset_context(
    counts: dict[str, int],
    *,
    taxonomy: Taxonomy = MULTI_CANCER,
    split: dict | None = None,
    synthetic: bool = False,
    bad_files: int = 0,
    layout: str | None = None,
) -> dict:
    """Template variables of the dataset card (pure)."""
    rows = [
        {
            "name": s.name,
            "human_name": s.human_name,
            "main": s.main,
            "modality": s.modality,
            "source": taxonomy.sources.get(s.main, ""),
            "count": int(counts.get(s.name, 0)),
            "orientation": "free (rotations/flips keep the label)" if s.dihedral else "fixed (anatomical)",
        }
        for s in taxonomy.sub_classes
    ]
    return {
        "taxonomy": {"name": taxonomy.name, "num_sub": taxonomy.num_sub, "num_main": taxonomy.num_main},
        "rows": rows,
        "num_images": sum(r["count"] for r in rows),
        "main_counts": [
            {
                "main": m,
                "count": sum(r["count"] for r in rows if r["main"] == m),
                "source": taxonomy.sources.get(m, ""),
            }
            for m in taxonomy.main_names
        ],
        "synthetic": synthetic,
        "notice": DEMO_DATA_NOTICE if synthetic else None,
        "split": {"protocol": (split or {}).get("protocol"), **_split_tables(split, taxonomy)}
        if split
        else None,
        "bad_files": bad_files,
        "layout": layout,
        "citation": DATASET_CITATIONS.get(taxonomy.name),
        "example_path": f"{rows[0]['main']}/{rows[0]['name']}/{rows[0]['name']}_1.jpg" if rows else "",
    }


def _size_category(n: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return label
    return "n>1M"


def render_dataset_card(
    counts: dict[str, int],
    *,
    pretty_name: str,
    taxonomy: Taxonomy = MULTI_CANCER,
    split: dict | None = None,
    synthetic: bool = False,
    license: str = "unknown",  # noqa: A002 - the Hub's metadata key
    bad_files: int = 0,
    layout: str | None = None,
) -> DatasetCard:
    """The README.md of a dataset repo holding the user's copy of the images."""
    context = dataset_context(
        counts, taxonomy=taxonomy, split=split, synthetic=synthetic, bad_files=bad_files, layout=layout
    )
    tags = ["medical", "histopathology", "cancer"] + (["synthetic"] if synthetic else [])
    card_data = DatasetCardData(
        pretty_name=pretty_name,
        license=license,
        task_categories=["image-classification"],
        size_categories=[_size_category(context["num_images"])],
        tags=tags,
    )
    return DatasetCard.from_template(
        card_data, template_str=_template("dataset"), pretty_name=pretty_name, **context
    )
