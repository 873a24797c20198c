"""CancerNet Space: classify a cell, tissue or scan image with the CancerNet ensemble and show why.

Run it:
    CANCERNET_MODEL=runs/demo/ensemble python spaces/cancernet/app.py        # a local ensemble folder
    python spaces/cancernet/app.py --model org/cancernet-ensemble --revision <sha>
    cancernet app --model runs/demo/ensemble --port 7860                     # the same app, from the CLI

Demo order: imports -> load the model once -> a pure `predict` -> `build_demo(predict_fn)` (tests pass
fakes) -> hardened `launch` -> `main`. Depends only on transformers, torch, gradio, Pillow and numpy,
never on the cancernet_hf library. Research use only: not a medical device.
"""

from __future__ import annotations

import os

# Before gradio is imported: no usage analytics, no run history, no telemetry from huggingface_hub.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["GRADIO_RUN_HISTORY"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # sibling modules, whether run as a script or loaded by `cancernet app`
    sys.path.insert(0, str(HERE))

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from explain import OutputDir, occlusion_map, overlay  # noqa: E402
from inputs import MAX_UPLOAD_BYTES, RejectedImage, check_image, checked_image, read_image  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import pipeline  # noqa: E402

logger = logging.getLogger(__name__)

ENV_MODEL = "CANCERNET_MODEL"  # model id on the Hub or a local ensemble folder
ENV_REVISION = "CANCERNET_MODEL_REVISION"  # pin the remote code to a commit you have read
ENV_OCCLUSION_GRID = "CANCERNET_OCCLUSION_GRID"
TASK = "cancer-image-classification"  # the ensemble's own pipeline task
META_FILE = "cancernet.json"
TOP_K = 5
OCCLUSION_GRID = 6
QUEUE_MAX_SIZE = 64  # requests waiting beyond this are refused ("queue full"), not piled up
CONCURRENCY = 2  # events of one kind running at once
MAX_BATCH_FILES = 32
CACHE_AGE_S = 3600  # uploads and outputs older than this are deleted
EXAMPLES_DIR = HERE / "examples"

DISCLAIMER = (
    "**Research use only: not a medical device.** This demo must not be used to diagnose, screen for or "
    "rule out any disease, nor to make treatment decisions. Its predictions can be confidently wrong, "
    "especially on images unlike its training data (other stains, scanners, modalities or sites). "
    "Do not upload identifiable patient data."
)
CSS = """
#status blockquote { border-left: 6px solid #d97706; background: #fef3c7; color: #78350f;
  padding: 0.6em 1em; margin: 0.4em 0; }
#disclaimer { border: 1px solid #dc2626; border-radius: 6px; padding: 0.3em 0.8em; }
"""

PredictFn = Callable[[Image.Image, bool], dict[str, Any]]
PredictManyFn = Callable[[list[Image.Image], bool], list[dict[str, Any]]]
ExplainFn = Callable[[Image.Image, str], str]  # (image, sub-class label to explain) -> PNG path
BATCH_HEADERS = [
    "file", "main_class", "main_score", "sub_class", "sub_name", "sub_score", "agreement", "uncertain", "error",
]  # fmt: skip
MEMBER_HEADERS = ["member", "top label", "score", "weight"]


# ---- the model --------------------------------------------------------------------------------------
class ModelLoadError(ValueError):
    """The model id or folder cannot be loaded as a CancerNet ensemble pipeline."""


def load_pipeline(model: str, *, revision: str | None = None, device: str | None = None):
    """Load the ensemble's own pipeline once; its remote code runs, so pin `revision` for Hub models."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        pipe = pipeline(model=model, revision=revision, trust_remote_code=True, device=device)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelLoadError(
            f"cannot load {model!r} as a CancerNet ensemble ({type(e).__name__}: {e}). Pass a folder written by "
            "`cancernet ensemble build` or a Hub id of one (offline, only cached Hub models load)."
        ) from e
    if getattr(pipe, "task", None) != TASK:
        raise ModelLoadError(
            f"{model!r} loaded as a {getattr(pipe, 'task', type(pipe).__name__)!r} pipeline, not {TASK!r}: it is "
            "not a CancerNet ensemble. Build one with `cancernet ensemble build` and pass its folder or Hub id."
        )
    return pipe


def make_predict(pipe) -> PredictFn:
    """The pure prediction: one RGB image in, the pipeline's result dict out."""

    def predict(image: Image.Image, tta: bool = False) -> dict[str, Any]:
        return pipe(image, tta=bool(tta), top_k=TOP_K)

    return predict


def make_predict_many(pipe, batch_size: int = 8) -> PredictManyFn:
    def predict_many(images: list[Image.Image], tta: bool = False) -> list[dict[str, Any]]:
        results = pipe(images, tta=bool(tta), top_k=TOP_K, batch_size=batch_size)
        return [r[0] if isinstance(r, list) and len(r) == 1 else r for r in results]

    return predict_many


def make_score_fn(pipe) -> Callable[[list[Image.Image]], np.ndarray]:
    """Ensemble probabilities for a list of images, through the model's own processor (for occlusion)."""

    @torch.inference_mode()
    def score(images: list[Image.Image]) -> np.ndarray:
        inputs = pipe.image_processor(images=images, return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(pipe.model.device, pipe.model.dtype)
        logits = pipe.model(pixel_values=pixel_values).logits
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    return score


def make_explain(
    score_fn, label2id: dict[str, int], output_dir: OutputDir, *, grid: int = OCCLUSION_GRID
) -> ExplainFn:
    """Occlusion heatmap of the predicted sub-class (TTA or not), written as a PNG file; returns its path."""

    def explain(image: Image.Image, label: str) -> str:
        drops, _, _ = occlusion_map(image, score_fn, target=label2id[label], grid=grid)
        return str(output_dir.write_png(overlay(image, drops)))

    return explain


def readme_model() -> str | None:
    """The first `models:` entry of the Space README (the Hub links the Space to it), if any."""
    from huggingface_hub import metadata_load

    try:
        models = (metadata_load(HERE / "README.md") or {}).get("models") or []
    except Exception:  # noqa: BLE001 - a missing or broken README only removes the default
        return None
    return str(models[0]) if models else None


def model_notice(model: str, revision: str | None = None) -> str | None:
    """The ensemble's own notice (e.g. trained on synthetic demo data), read from its cancernet.json."""
    path = Path(model) / META_FILE
    try:
        if not path.is_file():
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(model, META_FILE, revision=revision))
        meta = json.loads(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - the notice is optional; never block the app on it
        return None
    notice = meta.get("notice")
    if not notice and meta.get("synthetic_data"):
        notice = "This model was trained on synthetic demo data: its predictions mean nothing medically."
    return str(notice) if notice else None


# ---- turning a result into what the page shows ------------------------------------------------------
def _sub_display_names(entries: list[dict[str, Any]]) -> list[str]:
    """Human names for the Label; the label id is appended where two entries would read the same."""
    names = [str(e.get("name") or e["label"]) for e in entries]
    return [f"{n} ({e['label']})" if names.count(n) > 1 else n for n, e in zip(names, entries)]


def format_result(
    result: dict[str, Any], tta_requested: bool = False
) -> tuple[dict[str, float], dict[str, float], list[list], str]:
    """(main-class confidences, sub-class top-k by human name, member rows, status markdown)."""
    main = {str(e["label"]): float(e["score"]) for e in result["main_class"]}
    subs = list(result["sub_class"])[:TOP_K]
    sub = {name: float(e["score"]) for name, e in zip(_sub_display_names(subs), subs)}
    members = [
        [str(m["member"]), str(m["label"]), round(float(m["score"]), 4), round(float(m["weight"]), 4)]
        for m in result.get("members", [])
    ]
    return main, sub, members, status_markdown(result, tta_requested)


def status_markdown(result: dict[str, Any], tta_requested: bool = False) -> str:
    members = result.get("members", [])
    top = result["sub_class"][0]["label"] if result.get("sub_class") else None
    voting = sum(1 for m in members if m.get("label") == top)
    parts = [f"**Agreement:** {float(result.get('agreement', 0.0)):.0%}"]
    if members:
        parts.append(f"{voting}/{len(members)} members vote for the top sub-class")
    parts.append(f"entropy {float(result.get('entropy', 0.0)):.2f} nats")
    if result.get("tta"):
        parts.append("test-time augmentation applied (8 rotations/flips)")
    elif tta_requested:
        parts.append("test-time augmentation not applied (MRI and CT keep their orientation)")
    text = " · ".join(parts)
    if result.get("uncertain"):
        text = (
            "> ⚠️ **Uncertain / not a recognised image type.** The ensemble is less confident than its "
            "calibrated threshold: the image may not be one of the supported kinds (blood smear, brain MRI, "
            "breast/lung/colon/lymphoma/oral H&E, Pap cytology, kidney CT) or may be unlike its training "
            "images. Do not read anything into the labels below.\n\n" + text
        )
    return text


def _csv_cell(value: Any) -> Any:
    """Quote text a spreadsheet would run as a formula (file names are chosen by visitors)."""
    return (
        "'" + value
        if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r"))
        else value
    )


def write_csv(rows: list[list], output_dir: OutputDir) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(BATCH_HEADERS)
    writer.writerows([[_csv_cell(v) for v in row] for row in rows])
    return str(output_dir.write(buffer.getvalue().encode("utf-8"), ".csv", stem="cancernet-predictions"))


def _batch_row(name: str, result: dict[str, Any] | None, error: str = "") -> list:
    if result is None:
        return [name, "", None, "", "", None, None, None, error]
    main, sub = result["main_class"][0], result["sub_class"][0]
    return [
        name, main["label"], round(float(main["score"]), 4), sub["label"], sub.get("name", ""),
        round(float(sub["score"]), 4), round(float(result.get("agreement", 0.0)), 4),
        bool(result.get("uncertain", False)), "",
    ]  # fmt: skip


# ---- the page ---------------------------------------------------------------------------------------
def default_examples() -> list[list]:
    return [[str(p), False] for p in sorted(EXAMPLES_DIR.glob("*.jpg"))]


def build_demo(
    predict_fn: PredictFn,
    *,
    predict_many_fn: PredictManyFn | None = None,
    explain_fn: ExplainFn | None = None,
    examples: Sequence[Sequence[Any]] | None = None,
    model_name: str = "",
    notice: str | None = None,
    output_dir: OutputDir | None = None,
) -> gr.Blocks:
    """The whole UI around plain functions, so tests can pass fakes and the CLI the real ensemble."""
    output_dir = output_dir or OutputDir(max_age_s=CACHE_AGE_S)
    examples = default_examples() if examples is None else [list(e) for e in examples]

    def many(images: list[Image.Image], tta: bool) -> list[dict[str, Any]]:
        if predict_many_fn is not None:
            return predict_many_fn(images, tta)
        return [predict_fn(img, tta) for img in images]

    def validate_image(image: Any, tta: bool):
        rejected = check_image(image)
        return gr.validate(rejected is None, rejected.message if rejected else ""), gr.validate(True, "")

    def on_predict(image: Image.Image, tta: bool):
        rejected = check_image(image)
        if rejected is not None:  # the validator already said so; never reach the model with it
            raise gr.Error(rejected.message)
        try:
            result = predict_fn(image, bool(tta))
            main, sub, members, status = format_result(result, bool(tta))
            top = result["sub_class"][0]["label"]
            heatmap = explain_fn(image, top) if explain_fn is not None else None
        except Exception as e:
            logger.exception("prediction failed")
            raise gr.Error("The model could not process this image; try another file.") from e
        return main, sub, members, status, heatmap

    def validate_batch(files: list[str] | None, tta: bool):
        files = files or []
        if not files:
            message = "Add at least one image file."
        elif len(files) > MAX_BATCH_FILES:
            message = f"{len(files)} files is more than {MAX_BATCH_FILES} per batch; split them up."
        else:
            message = ""
        return gr.validate(not message, message), gr.validate(True, "")

    def on_predict_batch(files: list[str] | None, tta: bool, progress=gr.Progress()):
        files = list(files or [])[:MAX_BATCH_FILES]
        rows: list[list] = []
        for start in progress.tqdm(range(0, len(files), 8), desc="Classifying"):
            chunk = files[start : start + 8]
            opened = [(Path(f).name, read_image(f)) for f in chunk]
            good = [(name, img) for name, img in opened if not isinstance(img, RejectedImage)]
            try:
                results = many([img for _, img in good], bool(tta)) if good else []
            except Exception as e:
                logger.exception("batch prediction failed")
                raise gr.Error("The model could not process this batch; try fewer or other files.") from e
            by_name = iter(results)
            for name, img in opened:
                if isinstance(img, RejectedImage):
                    rows.append(_batch_row(name, None, img.message))
                else:
                    rows.append(_batch_row(name, next(by_name)))
        return rows, write_csv(rows, output_dir)

    with gr.Blocks(
        title="CancerNet: cancer image classifier (research demo)",
        analytics_enabled=False,
        delete_cache=(CACHE_AGE_S, CACHE_AGE_S),
    ) as demo:
        gr.Markdown(
            "# CancerNet\nClassifies a blood smear, brain MRI, H&E tissue, Pap cytology or kidney CT image into "
            "8 cancer types and 26 sub-classes with an ensemble of vision transformers and CNNs."
            + (f"\n\nModel: `{model_name}`" if model_name else ""),
            elem_id="title",
        )
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        if notice:
            gr.Markdown(f"> ⚠️ {notice}", elem_id="model-notice")
        with gr.Tab("One image", elem_id="tab-single"):
            with gr.Row():
                with gr.Column():
                    image = checked_image(
                        type="pil",
                        image_mode=None,  # keep 16-bit and odd modes; inputs.to_rgb rescales them
                        sources=["upload", "clipboard"],
                        label="Image (PNG, JPEG, TIFF, BMP, WebP; up to 10 MB)",
                        elem_id="input-image",
                    )
                    tta = gr.Checkbox(
                        value=False,
                        label="Test-time augmentation (8 rotations/flips; microscopy only, slower)",
                        elem_id="tta",
                    )
                    button = gr.Button("Predict", variant="primary", elem_id="predict-btn")
                with gr.Column():
                    status = gr.Markdown(elem_id="status")
                    main_label = gr.Label(label="Cancer type (main class)", elem_id="main-class")
                    sub_label = gr.Label(
                        label="Sub-class (top 5)", num_top_classes=TOP_K, elem_id="sub-class"
                    )
            with gr.Row():
                heatmap = gr.Image(
                    type="filepath",
                    format="png",
                    interactive=False,
                    label="Occlusion sensitivity: bright regions raised the top sub-class score",
                    elem_id="heatmap",
                )
                members = gr.Dataframe(
                    headers=MEMBER_HEADERS,
                    datatype=["str", "str", "number", "number"],
                    interactive=False,
                    label="Ensemble members (top label, its probability, fitted weight)",
                    elem_id="members",
                )
            if examples:
                gr.Examples(
                    examples=examples,
                    inputs=[image, tta],
                    example_labels=[
                        Path(str(e[0])).stem.replace("synthetic_", "synthetic: ") for e in examples
                    ],
                    label="Synthetic demo images (generated, not patient data)",
                    cache_examples=False,
                    elem_id="examples",
                )
            # A new image clears the previous answer, so no result is ever shown beside the wrong image.
            image.change(
                lambda: (None, None, None, "", None),
                outputs=[main_label, sub_label, members, status, heatmap],
                queue=False,
                api_visibility="private",
            )
            button.click(
                on_predict,
                inputs=[image, tta],
                outputs=[main_label, sub_label, members, status, heatmap],
                api_name="predict",
                validator=validate_image,
            )
        with gr.Tab("Batch", elem_id="tab-batch"):
            files = gr.File(
                file_count="multiple",
                file_types=["image"],
                label=f"Images (up to {MAX_BATCH_FILES}; unreadable files are listed with the reason)",
                elem_id="batch-files",
            )
            batch_tta = gr.Checkbox(value=False, label="Test-time augmentation", elem_id="batch-tta")
            batch_button = gr.Button("Classify all", variant="primary", elem_id="batch-btn")
            table = gr.Dataframe(
                headers=BATCH_HEADERS, interactive=False, label="Results", elem_id="batch-table"
            )
            csv_file = gr.File(label="Download CSV", interactive=False, elem_id="batch-csv")
            batch_button.click(
                on_predict_batch,
                inputs=[files, batch_tta],
                outputs=[table, csv_file],
                api_name="predict_batch",
                validator=validate_batch,
            )
    return demo


def launch(
    demo: gr.Blocks,
    *,
    host: str | None = None,
    port: int | None = None,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
    queue_max_size: int = QUEUE_MAX_SIZE,
    concurrency: int = CONCURRENCY,
):
    """Queue limits, upload limit, no monitoring endpoint, no run history, no analytics; returns launch()."""
    demo.queue(max_size=queue_max_size, default_concurrency_limit=concurrency)
    return demo.launch(
        server_name=host,  # None: Gradio reads GRADIO_SERVER_NAME (0.0.0.0 on Spaces), else 127.0.0.1
        server_port=port,
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet,
        show_error=False,  # unexpected errors stay in the server log; visitors see gr.Error messages only
        max_file_size=MAX_UPLOAD_BYTES,
        enable_monitoring=False,
        run_history=False,
        ssr_mode=False,
        mcp_server=False,
        footer_links=["api", "settings"],
        allowed_paths=[str(EXAMPLES_DIR)],
        css=CSS,
    )


def serve(
    model: str,
    *,
    revision: str | None = None,
    host: str | None = None,
    port: int | None = None,
    prevent_thread_lock: bool = False,
):
    """Load the ensemble, build the page and launch it (blocks unless prevent_thread_lock)."""
    pipe = load_pipeline(model, revision=revision)
    output_dir = OutputDir(max_age_s=CACHE_AGE_S)
    grid = int(os.environ.get(ENV_OCCLUSION_GRID, OCCLUSION_GRID))
    demo = build_demo(
        make_predict(pipe),
        predict_many_fn=make_predict_many(pipe),
        explain_fn=make_explain(make_score_fn(pipe), pipe.model.config.label2id, output_dir, grid=grid),
        model_name=model + (f"@{revision}" if revision else ""),
        notice=model_notice(model, revision),
        output_dir=output_dir,
    )
    return demo, launch(demo, host=host, port=port, prevent_thread_lock=prevent_thread_lock)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the CancerNet demo app.")
    parser.add_argument(
        "--model",
        default=os.environ.get(ENV_MODEL) or readme_model(),
        help=f"Hub id or folder (default: ${ENV_MODEL}, else the README's first `models:` entry)",
    )
    parser.add_argument("--revision", default=os.environ.get(ENV_REVISION), help="Hub commit to pin")
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860 or the next free one)")
    args = parser.parse_args(argv)
    if not args.model:
        parser.error(f"no model: pass --model DIR_OR_REPO_ID or set {ENV_MODEL}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    serve(args.model, revision=args.revision, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
