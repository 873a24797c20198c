"""Peak: dense matmul GFLOP/s in fp32 and bf16 on this machine — the reference for every other bench.

python -m bench.peak [--smoke]
"""

from __future__ import annotations

import torch

from .common import best_time, load_average, machine_line, print_table, run_cli, save_results


def matmul_gflops(dtype: torch.dtype, n: int = 1024, rounds: int = 5) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    with torch.inference_mode():
        seconds = best_time(lambda: torch.mm(a, b), rounds=rounds, warmup=2)
    return 2 * n**3 / seconds / 1e9


def run(smoke: bool = False) -> dict[str, float]:
    n = 512 if smoke else 2048
    rounds = 2 if smoke else 5
    result = {
        "fp32_gflops": matmul_gflops(torch.float32, n, rounds),
        "bf16_gflops": matmul_gflops(torch.bfloat16, n, rounds),
        "n": n,
    }
    print(machine_line())
    print_table(
        "Dense matmul peak",
        ["dtype", "GFLOP/s", "size"],
        [["fp32", result["fp32_gflops"], n], ["bf16", result["bf16_gflops"], n]],
    )
    notes = [
        f"bf16 runs {result['bf16_gflops'] / result['fp32_gflops']:.2f}× fp32 on this CPU: the reference for "
        "what the low-precision paths below can gain at most. Both are measured again inside the inference "
        "bench, next to the figures they are compared with (machine load changes between benches)."
    ]
    save_results(
        "peak_smoke" if smoke else "peak",
        {
            **result,
            "notes": notes,
            "smoke": smoke,
            "load_avg": load_average(),
            "title": "Peak: dense matmul",
            "tables": [
                {
                    "title": f"{n}x{n} matmul",
                    "header": ["dtype", "GFLOP/s"],
                    "rows": [["fp32", result["fp32_gflops"]], ["bf16", result["bf16_gflops"]]],
                }
            ],
        },
    )
    return result


if __name__ == "__main__":
    run_cli(run, __doc__)
