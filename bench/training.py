"""Training: samples/s and peak memory for micro-batch b x accumulation k at a fixed global batch.

python -m bench.training [--smoke]

Both of helper D's loops (the `Trainer` path and the plain Accelerate path) train the tiny ViT preset
(`vit-tiny`, 64 px, the demo's member size) on synthetic 128 px JPEGs with the demo's augmentations.
Each configuration runs in a fresh subprocess (one torch thread) so its peak RSS is its own; in that
process the measured configuration runs first, then the same micro-batch without accumulation (b x 1)
for the overhead ratio.

- samples/s: steady state, after the first optimiser step, from per-step timestamps;
- activation memory: peak RSS during training minus RSS just before it (model, optimiser and data are
  already loaded), which is what falls with a smaller micro-batch; CUDA max memory where a GPU exists.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import load_average, machine_line, print_table, rss_mib, save_results, synthetic_jpegs

logger = logging.getLogger(__name__)

PRESET = "vit-tiny"
GLOBAL_BATCH = 32
CONFIGS = ((32, 1), (16, 2), (8, 4), (4, 8))
SMOKE_CONFIGS = ((4, 2),)
PATHS = ("trainer", "accelerate")
# Accumulation overhead target (issue 7): <= 5% samples/s against the same micro-batch without it.
MAX_OVERHEAD = 0.05
MARKER = "BENCH_RESULT "  # the worker's result line (Trainer prints dicts of its own to stdout)


def write_split(root: Path, out: Path, held_out: int = 13) -> Path:
    """A random manifest over the fixture: `held_out` images each for validation and test, the rest train."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))
    entries = {}
    for i, rel in enumerate(files):
        split = "validation" if i % 8 == 1 and i < 16 * held_out else "train"
        split = "test" if i % 8 == 2 and i < 16 * held_out else split
        entries[rel] = {"split": split, "group": i}
    manifest = {
        "protocol": "random",
        "seed": 0,
        "fractions": [0.8, 0.1, 0.1],
        "threshold": 0,
        "files": entries,
    }
    out.write_text(json.dumps(manifest))
    return out


# ---- inside the subprocess --------------------------------------------------------------------------
def _arguments(data_dir: str, split_file: str, output_dir: str, batch: int, accum: int, steps: int):
    from cancernet_hf.training.args import CancerNetTrainingArguments, DataArguments, ModelArguments

    model_args = ModelArguments(model_name_or_path=PRESET, disable_dropout=False)
    data_args = DataArguments(data_dir=data_dir, split_file=split_file, max_eval_samples=8)
    training_args = CancerNetTrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=32,
        gradient_accumulation_steps=accum,
        max_steps=steps,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        report_to="none",
        disable_tqdm=True,
        logging_steps=1000,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    return model_args, data_args, training_args


def _reset_accelerate() -> None:
    """Let a second Accelerator (another accumulation setting) start clean in the same process."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()


def _time_trainer(args: tuple) -> tuple[list[float], int]:
    """Timestamps at the end of every optimiser step; the number of samples per step."""
    from transformers import TrainerCallback

    from cancernet_hf.training.trainer import build_trainer

    model_args, data_args, training_args = args
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, *a, **kw):
            stamps.append(time.perf_counter())

    trainer, _, _ = build_trainer(model_args, data_args, training_args, callbacks=[Stamp()])
    _time_trainer.rss_before = rss_mib()  # type: ignore[attr-defined]
    reset_peak_rss()
    trainer.train()
    k = training_args.gradient_accumulation_steps
    return stamps, training_args.per_device_train_batch_size * k


def _time_accelerate(args: tuple) -> tuple[list[float], int]:
    """Timestamps at the end of every micro-batch that completes an optimiser step."""
    from cancernet_hf.training.accelerate_loop import _Loop

    model_args, data_args, training_args = args
    loop = _Loop(model_args, data_args, training_args, None)
    micro: list[float] = []
    inner = loop._train_step

    def timed(batch, window):
        inner(batch, window)
        micro.append(time.perf_counter())

    loop._train_step = timed
    _time_accelerate.rss_before = rss_mib()  # type: ignore[attr-defined]
    reset_peak_rss()
    loop.run()
    k = training_args.gradient_accumulation_steps
    return micro[k - 1 :: k], training_args.per_device_train_batch_size * k


def _rate(stamps: list[float], per_step: int) -> float:
    """Steady-state samples/s: from the end of the first optimiser step to the end of the last."""
    return (len(stamps) - 1) * per_step / (stamps[-1] - stamps[0])


def worker(path: str, data_dir: str, split_file: str, batch: int, accum: int, steps: int) -> dict[str, Any]:
    import torch

    timer = _time_trainer if path == "trainer" else _time_accelerate
    _reset_accelerate()
    with tempfile.TemporaryDirectory() as out:
        stamps, per_step = timer(_arguments(data_dir, split_file, out, batch, accum, steps))
        peak = peak_rss_since_reset()
        before = timer.rss_before  # type: ignore[attr-defined]
        cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
        result = {
            "samples_per_s": _rate(stamps, per_step),
            "rss_before_mib": before,
            "peak_rss_mib": peak,
            "activation_mib": peak - before,
            "cuda_max_mib": cuda,
        }
        if accum > 1:
            # The same micro-batch without accumulation, as many micro-batches (+1 warm-up step); then
            # the pair once more, keeping the faster of each, so a drift in machine load hits both.
            rates = {"with": [result["samples_per_s"]], "without": []}
            for repeat in range(2):
                _reset_accelerate()
                args = _arguments(
                    data_dir, split_file, f"{out}/b1-{repeat}", batch, 1, (steps - 1) * accum + 1
                )
                rates["without"].append(_rate(*timer(args)))
                if repeat == 0:
                    _reset_accelerate()
                    args = _arguments(data_dir, split_file, f"{out}/again", batch, accum, steps)
                    rates["with"].append(_rate(*timer(args)))
            result["samples_per_s"] = max(rates["with"])
            result["no_accum_samples_per_s"] = max(rates["without"])
    return result


def peak_rss_since_reset() -> float:
    """VmHWM (MiB): the peak RSS of this process image, reset by `reset_peak_rss` (ru_maxrss is not:
    Linux carries the parent's high-water mark across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss() -> None:
    """Writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        logger.warning("cannot reset the peak RSS; activation memory includes set-up peaks")


# ---- the bench (parent process) ---------------------------------------------------------------------
def _spawn(path: str, data_dir: Path, split_file: Path, batch: int, accum: int, steps: int) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "bench.training", "--worker", path, "--data", str(data_dir),
        "--split", str(split_file), "--batch", str(batch), "--accum", str(accum), "--steps", str(steps),
    ]  # fmt: skip
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parent.parent, check=False
    )
    lines = [line[len(MARKER) :] for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"bench.training worker {cmd[3:]} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def run(smoke: bool = False) -> dict[str, Any]:
    print(machine_line())
    data_dir = synthetic_jpegs(per_class=2 if smoke else 8, size=64 if smoke else 128)
    configs = SMOKE_CONFIGS if smoke else CONFIGS
    steps = 2 if smoke else 12
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        split_file = write_split(data_dir, Path(tmp) / "split.json", held_out=4 if smoke else 13)
        for path in PATHS:
            for batch, accum in configs:
                start = time.perf_counter()
                if smoke:  # in-process: proves both loops run; its memory figures mean little
                    r = worker(path, str(data_dir), str(split_file), batch, accum, steps)
                else:
                    r = _spawn(path, data_dir, split_file, batch, accum, steps)
                r["load_avg"] = load_average()
                results[f"{path} {batch}x{accum}"] = r
                print(f"  {path} {batch}x{accum}: {r['samples_per_s']:.0f} samples/s "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip

    rows, overheads = [], []
    for path in PATHS:
        for batch, accum in configs:
            r = results[f"{path} {batch}x{accum}"]
            base = r.get("no_accum_samples_per_s")
            overhead = None if base is None else 1 - r["samples_per_s"] / base
            if overhead is not None:
                overheads.append(overhead)
            rows.append([
                path, f"{batch}×{accum}", r["samples_per_s"], "—" if base is None else base,
                "—" if overhead is None else f"{overhead:+.1%}", r["activation_mib"], r["peak_rss_mib"],
            ])  # fmt: skip
    header = [
        "loop",
        "b×k",
        "samples/s",
        "b×1 samples/s",
        "accum. overhead",
        "activation MiB",
        "peak RSS MiB",
    ]
    global_batch = configs[0][0] * configs[0][1]
    print_table(f"{PRESET}, global batch {global_batch}, {steps} optimiser steps", header, rows)

    worst = max(overheads) if overheads else 0.0
    # Falls with k: never rises by more than the allocator's granularity (2 MiB), and ends lower than k = 1.
    act = {p: [results[f"{p} {b}x{k}"]["activation_mib"] for b, k in configs] for p in PATHS}
    falls = all(
        all(later <= earlier + 2.0 for earlier, later in zip(a, a[1:])) and a[-1] < a[0] for a in act.values()
    )
    notes = [
        f"**Target: accumulation costs ≤ 5% samples/s: {'met' if worst <= MAX_OVERHEAD else 'NOT met'}** — "
        f"the worst configuration loses {worst:.1%} against the same micro-batch without accumulation "
        "(positive = slower; negative = accumulating is cheaper than the optimiser step, scheduler and "
        "callbacks that b × 1 pays after every micro-batch). The runs are adjacent in one process, not "
        "interleaved step by step (each side runs twice and keeps its faster run), so a change of machine load "
        "between them still shows up here; the load average is in the results.",
        f"**Target: peak activation memory falls with k: {'met' if falls else 'NOT met (see the rows)'}** — "
        "activation memory is peak RSS during training minus RSS just before it (the peak is reset there), "
        "per path from b = "
        + "/".join(str(b) for b, _ in configs)
        + ": "
        + "; ".join(f"{p} " + " → ".join(f"{v:.0f}" for v in a) + " MiB" for p, a in act.items())
        + f". The {PRESET} preset is small (~0.3M parameters at 64 px), so a floor of buffers that do not "
        "depend on the batch (allocator caches, the loader's decoded images) is a large share.",
        "Samples/s here are for the whole loop as users run it (on-the-fly JPEG decode and augmentation in "
        "the main process, `dataloader_num_workers=0`), so both loops pay the same input cost.",
    ]
    for note in notes:
        print("\n" + note)
    payload = {
        "title": f"Training: micro-batch × accumulation at global batch {global_batch}",
        "preset": PRESET,
        "steps": steps,
        "results": results,
        "targets": {"accum_overhead_le_5pct": worst <= MAX_OVERHEAD, "activation_falls_with_k": falls},
        "target_rows": [
            [
                "Accumulation costs ≤ 5% samples/s (vs the same micro-batch, k = 1)",
                f"worst {worst:+.1%}",
                "met" if worst <= MAX_OVERHEAD else "**not met**",
            ],
            [
                "Peak activation memory falls with k",
                ", ".join(
                    f"{p} "
                    + "/".join(f"{results[f'{p} {b}x{k}']['activation_mib']:.0f}" for b, k in configs)
                    + " MiB"
                    for p in PATHS
                ),
                "met" if falls else "**not met**",
            ],
        ],
        "tables": [
            {
                "title": f"{PRESET} (64 px), synthetic 128 px JPEGs, {steps} optimiser steps per run, "
                "one subprocess per row",
                "header": header,
                "rows": rows,
            }
        ],
        "notes": notes,
        "smoke": smoke,
    }
    save_results("training" if not smoke else "training_smoke", payload)
    return payload


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="one small configuration: proves it runs")
    parser.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--split", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--accum", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        logging.disable(logging.WARNING)
        # One thread: on shared cores, OpenMP threads that spin-wait for each other turn small ops into
        # noise; the ratios between configurations are what this bench is for.
        torch.set_num_threads(1)
        result = worker(args.worker, args.data, args.split, args.batch, args.accum, args.steps)
        print(MARKER + json.dumps(result), flush=True)
    else:
        run(args.smoke)


if __name__ == "__main__":
    main()
