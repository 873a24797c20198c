"""PNG plots of an evaluation: confusion matrices (sub and main), reliability, per-class F1, risk-coverage.

Uses matplotlib's object API (`Figure`, no pyplot), so no GUI backend or global state is touched.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..taxonomy import Taxonomy

logger = logging.getLogger(__name__)

PLOT_FILES = {
    "confusion_sub": "confusion_sub.png",
    "confusion_main": "confusion_main.png",
    "reliability": "reliability.png",
    "per_class_f1": "per_class_f1.png",
    "risk_coverage": "risk_coverage.png",
}
DPI = 110


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _title(metrics: dict, what: str) -> str:
    title = (
        f"{what}\n{Path(str(metrics['model'])).name} ({metrics['model_kind']}), {metrics['split']} split, "
    )
    title += f"{metrics['num_images']} images"
    if metrics.get("synthetic_data"):
        title += "\nSYNTHETIC DEMO DATA - not medical performance"
    return title


def _row_normalise(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=np.float64), where=totals > 0)


def sub_order(taxonomy: Taxonomy) -> list[int]:
    """Sub-class ids grouped by main class (taxonomy order), so each organ is one block."""
    return sorted(range(taxonomy.num_sub), key=lambda i: (taxonomy.sub_to_main[i], i))


def plot_confusion(matrix: np.ndarray, names: list[str], path: Path, title: str, *, blocks=None) -> None:
    """Row-normalised confusion matrix (rows: true class); cells show the share of the row."""
    counts = np.asarray(matrix)
    norm = _row_normalise(counts)
    n = len(names)
    side = max(5.0, 0.38 * n + 2.5)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label="share of true class")
    ax.set_xticks(range(n), names, rotation=90, fontsize=8 if n > 12 else 9)
    ax.set_yticks(
        range(n), [f"{name} ({counts[i].sum()})" for i, name in enumerate(names)], fontsize=8 if n > 12 else 9
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (support)")
    ax.set_title(title, fontsize=10)
    font = 6 if n > 12 else 9
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                text = f"{norm[i, j]:.2f}" if n <= 12 else f"{round(100 * norm[i, j])}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=font,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    for edge in blocks or []:
        ax.axhline(edge - 0.5, color="0.3", linewidth=0.8)
        ax.axvline(edge - 0.5, color="0.3", linewidth=0.8)
    fig.savefig(path)


def plot_reliability(metrics: dict, path: Path, title: str) -> None:
    """Accuracy vs confidence per bin (before and, when fitted, after temperature) over a count histogram."""
    fig = _figure(6.0, 6.5)
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    calibration, bins_of = metrics["calibration"], metrics["reliability"]
    curves = [("model", bins_of["model"], calibration["ece"], "tab:blue")]
    if bins_of.get("after_temperature"):
        label = f"T={calibration['temperature']:.2f} (fitted on validation)"
        curves.append(
            (label, bins_of["after_temperature"], calibration["ece_after_temperature"], "tab:orange")
        )
    n_bins = len(bins_of["model"]["bin_count"])
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    top.plot([0, 1], [0, 1], linestyle="--", color="0.5", label="perfect calibration")
    for k, (label, bins, ece, colour) in enumerate(curves):
        acc = np.array(bins["bin_accuracy"], dtype=np.float64)
        width = 1.0 / n_bins / len(curves)
        offset = (k - (len(curves) - 1) / 2) * width
        top.bar(
            centres + offset,
            np.nan_to_num(acc),
            width=width,
            color=colour,
            alpha=0.7,
            label=f"{label}: ECE {ece:.3f}",
        )
        conf = np.array(bins["bin_confidence"], dtype=np.float64)
        top.plot(conf, acc, marker="o", markersize=3, color=colour, linewidth=1)
        bottom.bar(centres + offset, bins["bin_count"], width=width, color=colour, alpha=0.7)
    top.set_ylabel("accuracy")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title, fontsize=10)
    bottom.set_xlabel("confidence (top probability)")
    bottom.set_ylabel("images")
    fig.savefig(path)


def plot_per_class_f1(per_class: dict, taxonomy: Taxonomy, path: Path, title: str) -> None:
    """Horizontal F1 bars per sub-class, grouped and coloured by main class, with support."""
    order = sub_order(taxonomy)
    names = [taxonomy.sub_names[i] for i in order]
    f1 = [per_class[n]["f1"] for n in names]
    support = [per_class[n]["support"] for n in names]
    colours = [f"C{taxonomy.sub_to_main[i] % 10}" for i in order]
    fig = _figure(7.5, max(3.0, 0.28 * len(names) + 1.8))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    ax.barh(y, f1, color=colours)
    for yi, value, n in zip(y, f1, support):
        ax.text(min(value, 0.82) + 0.01, yi, f"{value:.2f} (n={n})", va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=f"C{k % 10}", label=m) for k, m in enumerate(taxonomy.main_names)],
        fontsize=7,
        loc="lower right",
    )
    ax.set_title(title, fontsize=10)
    fig.savefig(path)


def plot_risk_coverage(coverage: np.ndarray, risk: np.ndarray, aurc: float, path: Path, title: str) -> None:
    """Error rate of the most confident predictions as coverage grows (selective prediction)."""
    fig = _figure(6.0, 4.5)
    ax = fig.add_subplot()
    ax.plot(coverage, risk, color="tab:red", label=f"AURC {aurc:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(0.05, float(np.max(risk)) * 1.1) if len(risk) else 1)
    ax.set_xlabel("coverage (share of images answered, most confident first)")
    ax.set_ylabel("error rate")
    ax.legend()
    ax.set_title(title, fontsize=10)
    fig.savefig(path)


def write_all(metrics: dict, taxonomy: Taxonomy, output_dir: Path) -> dict[str, str]:
    """Write every plot into `output_dir`; return {plot name: file name relative to output_dir}."""
    out = Path(output_dir)
    order = sub_order(taxonomy)
    sub_counts = np.asarray(metrics["confusion"]["sub"])[np.ix_(order, order)]
    mains = [taxonomy.sub_to_main[i] for i in order]
    blocks = [k for k in range(1, len(order)) if mains[k] != mains[k - 1]]
    plot_confusion(
        sub_counts,
        [taxonomy.sub_names[i] for i in order],
        out / PLOT_FILES["confusion_sub"],
        _title(metrics, "Sub-class confusion, % of each true class"),
        blocks=blocks,
    )
    plot_confusion(
        np.asarray(metrics["confusion"]["main"]),
        taxonomy.main_names,
        out / PLOT_FILES["confusion_main"],
        _title(metrics, "Main-class confusion (summed sub-class probabilities)"),
    )
    plot_reliability(metrics, out / PLOT_FILES["reliability"], _title(metrics, "Reliability"))
    plot_per_class_f1(
        metrics["per_class"], taxonomy, out / PLOT_FILES["per_class_f1"], _title(metrics, "Per-class F1")
    )
    plot_risk_coverage(
        metrics["_coverage"],
        metrics["_risk"],
        metrics["aurc"],
        out / PLOT_FILES["risk_coverage"],
        _title(metrics, "Risk-coverage"),
    )
    logger.info("wrote %d plots to %s", len(PLOT_FILES), out)
    return dict(PLOT_FILES)
