"""Predict files and folders with a member or the ensemble, through transformers pipelines.

The ensemble folder brings its own pipeline (remote code, task `cancer-image-classification`:
main class, member votes, agreement, uncertainty, TTA). A plain member uses the stock
`image-classification` pipeline and gets its main class here, from the taxonomy, the same way
(sum of the sub-class probabilities). Unreadable images are reported per file; the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..constants import IGNORED_FILE_NAMES, IMAGE_EXTENSIONS
from ..errors import BadImageError, CancerNetError, DatasetLayoutError, TaxonomyError
from ..taxonomy import MULTI_CANCER, Taxonomy
from .report import model_kind

logger = logging.getLogger(__name__)

CHUNK = 64  # images decoded at once: bounds memory on big folders


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded (recursively, sorted) to their image files; hidden files skipped."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and p.name not in IGNORED_FILE_NAMES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise DatasetLayoutError(
                    f"Folder {path} holds no image file (extensions {sorted(IMAGE_EXTENSIONS)}); "
                    "pass image files or a folder that contains some."
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist; pass image files or folders.")
    return files


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _member_output(scores: list[dict], taxonomy: Taxonomy, top_k: int) -> dict:
    """Stock pipeline scores (all labels) -> our output shape: sub top-k with names, main top-k by sums."""
    by_label = {s["label"]: float(s["score"]) for s in scores}
    main_scores = dict.fromkeys(taxonomy.main_names, 0.0)
    for sub in taxonomy.sub_classes:
        main_scores[sub.main] += by_label.get(sub.name, 0.0)
    subs = sorted(by_label.items(), key=lambda kv: -kv[1])[:top_k]
    mains = sorted(main_scores.items(), key=lambda kv: -kv[1])[:top_k]
    return {
        "sub_class": [{"label": k, "name": taxonomy.sub(k).human_name, "score": v} for k, v in subs],
        "main_class": [{"label": k, "score": v} for k, v in mains],
    }


def load_predictor(model_dir: str | Path, taxonomy: Taxonomy = MULTI_CANCER):
    """(pipeline, kind): the ensemble's own pipeline or the stock image-classification one."""
    from transformers import pipeline

    kind = model_kind(model_dir)
    if kind == "ensemble":
        return pipeline(model=str(model_dir), trust_remote_code=True), kind
    pipe = pipeline("image-classification", model=str(model_dir))
    config = pipe.model.config
    labels = [config.id2label[i] for i in range(config.num_labels)]
    if sorted(labels) != sorted(taxonomy.sub_names):
        raise TaxonomyError(
            f"Model {model_dir} predicts {len(labels)} labels (e.g. {labels[:3]}) that are not the "
            f"{taxonomy.num_sub} sub-classes of taxonomy {taxonomy.name!r}; pass --taxonomy FILE with "
            "the taxonomy it was trained with."
        )
    return pipe, kind


def predict_images(
    model_dir: str | Path,
    inputs: Sequence[str | Path],
    *,
    taxonomy: Taxonomy = MULTI_CANCER,
    tta: bool = False,
    top_k: int = 3,
    batch_size: int = 16,
    progress: bool = True,
) -> list[dict]:
    """One dict per image file: {"file", "model_kind", "sub_class", "main_class", ...} or {"file", "error"}.

    Ensemble results also carry "members", "agreement", "entropy", "uncertain", "tta" (pipeline_cancernet).
    """
    from tqdm.auto import tqdm

    from ..data.images import open_image

    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}.")
    files = collect_images(inputs)
    pipe, kind = load_predictor(model_dir, taxonomy)
    if tta and kind != "ensemble":
        raise CancerNetError(
            f"--tta needs an ensemble folder, but {model_dir} is a single member; build one with "
            "`cancernet ensemble` or drop --tta."
        )
    results: list[dict] = []
    bar = tqdm(total=len(files), desc="predict", unit="img", disable=not progress or len(files) < 2 * CHUNK)
    for chunk in _chunks(files, CHUNK):
        images, done = [], {}
        for i, path in enumerate(chunk):
            try:
                images.append(open_image(path))
            except BadImageError as e:
                done[i] = {"file": str(path), "error": str(e)}
        if kind == "ensemble":
            kwargs = {"top_k": top_k, **({"tta": True} if tta else {})}
        else:
            kwargs = {"top_k": taxonomy.num_sub}
        outputs = pipe(images, batch_size=batch_size, **kwargs) if images else []
        if images and isinstance(outputs, dict):  # a pipeline may unwrap a single input
            outputs = [outputs]
        outputs = iter(outputs)
        for i, path in enumerate(chunk):
            if i in done:
                results.append(done[i])
                continue
            out = next(outputs)
            if kind == "member":
                out = _member_output(out, taxonomy, top_k)
            results.append({"file": str(path), "model_kind": kind, **out})
        bar.update(len(chunk))
    bar.close()
    return results


def format_prediction(result: dict) -> str:
    """Two or three human lines per image."""
    if "error" in result:
        return f"{result['file']}\n  error: {result['error']}"
    subs = " | ".join(
        f"{s['label']} ({s.get('name', s['label'])}) {s['score']:.3f}" for s in result["sub_class"]
    )
    mains = " | ".join(f"{m['label']} {m['score']:.3f}" for m in result["main_class"])
    lines = [result["file"], f"  sub : {subs}", f"  main: {mains}"]
    if "agreement" in result:
        flag = "UNCERTAIN" if result.get("uncertain") else "confident"
        lines.append(
            f"  ensemble: agreement {result['agreement']:.2f}, entropy {result['entropy']:.3f}, {flag}"
            + (", TTA" if result.get("tta") else "")
        )
    return "\n".join(lines)
