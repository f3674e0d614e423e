"""Option scoring in the ``hf`` plugin: every candidate in full (before) versus the prompt encoded once, batched.

    python benchmarks/hf_scoring.py                       # tiny Qwen2-VL, cpu, batches of 1 4 8
    python benchmarks/hf_scoring.py --arch all            # every tiny architecture
    python benchmarks/hf_scoring.py --model-dir /models/SmolVLM-256M-Instruct --device cuda --dtype bfloat16

What is measured: VELM prompts of the demo data (three images each, the
category's candidate classes), rendered as ``harness run`` renders them,
scored by the plugin's model wrapper directly (no dispatcher):

- ``full``: one prompt at a time, every candidate's whole sequence (prompt,
  images, answer) in one forward pass: the images and prompt are encoded once
  per candidate. This was the plugin's scoring before, kept as
  ``harness_hf.scoring.score_unshared``.
- ``shared B``: B prompts in one forward pass that keeps their keys and values,
  then all their candidates' answers in one more (`score_shared`).

The model is loaded once and warmed up; each way is timed ``--repeats`` times
and the best pass reported, with the largest difference of any score from the
``full`` scores. Without ``--model-dir`` the models are the tiny random ones of
tests/tiny_vlms.py: their vision towers are tiny, so the saving shown is mostly
the prompt's tokens and the processor's work, less than a real model's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from hf_batching import models_to_measure, print_setup, velm_prompts  # noqa: E402

from harness_hf import scoring  # noqa: E402
from harness_hf.checkpoint import Checkpoint  # noqa: E402
from harness_hf.devices import resolve_device, resolve_dtype  # noqa: E402


def timed(run, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def measure(name: str, model_dir: Path, prompts, args) -> None:
    from harness_hf.vlm import LocalVLM

    device = resolve_device(args.device)
    model = LocalVLM(Checkpoint(str(model_dir), model_dir), device=device, dtype=resolve_dtype(args.dtype, device))
    model.score_batch(prompts[:2])  # warm up
    scoring.score_unshared(model, prompts[0])
    rows = [("full", *timed(lambda: [scoring.score_unshared(model, p) for p in prompts], args.repeats))]
    for size in args.batch_sizes:
        def shared(size=size):
            return [s for i in range(0, len(prompts), size) for s in model.score_batch(prompts[i:i + size])]
        rows.append((f"shared {size}", *timed(shared, args.repeats)))
    candidates = sum(len(p.candidates) for p in prompts) / len(prompts)
    print(f"\n{name}: {len(prompts)} prompts of 3 images, {candidates:.1f} candidates each, device {device}, "
          f"dtype {str(model.dtype).removeprefix('torch.')}; best of {args.repeats}")
    print(f"{'way':>10}  {'prompts/s':>9}  {'vs full':>7}  {'seconds':>7}  largest score difference from full")
    reference = rows[0][2]
    for way, seconds, scored in rows:
        difference = max(abs(a.scores[k] - b.scores[k]) for a, b in zip(scored, reference) for k in a.scores)
        print(f"{way:>10}  {len(prompts) / seconds:>9.2f}  {rows[0][1] / seconds:>6.2f}x  {seconds:>7.2f}  {difference:.2e}")
    model.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="qwen2_vl", help="tiny architecture: llava, qwen2_vl, idefics3 or all")
    parser.add_argument("--model-dir", type=Path, default=None, help="a saved model to use instead of a tiny one")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    print_setup("benchmarks/hf_scoring.py")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        prompts = velm_prompts(args.prompts, workdir)
        for name, model_dir in models_to_measure(args, workdir).items():
            measure(name, model_dir, prompts, args)


if __name__ == "__main__":
    main()
