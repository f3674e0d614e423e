"""Throughput of the ``hf`` plugin: batched versus one-at-a-time generation (or option scoring).

    python benchmarks/hf_batching.py                          # tiny Qwen2-VL, cpu, batch sizes 1 4 8
    python benchmarks/hf_batching.py --arch all               # every tiny architecture
    python benchmarks/hf_batching.py --mode score             # option scoring instead of generation
    python benchmarks/hf_batching.py --model-dir /models/SmolVLM-256M-Instruct --device cuda

What is measured: VELM prompts (a normal reference, the query, the query with
the defect outlined, and the candidate classes) rendered from the demo data
exactly as ``harness run`` renders them, sent through the harness's own
dispatcher (``harness.run.dispatch.Dispatcher``, response cache off) to an
``hf`` classifier, all at once, with the classifier's default concurrency
(twice the batch size). For each batch size the model is loaded and warmed up
first (one request, not timed), then the prompts are timed ``--repeats``
times; the best pass is reported as images per second (one image = one
flagged sample = one prompt of three pictures). The answers of every batch
size are compared with those of batch size 1.

Without ``--model-dir`` the models are the tiny random ones of
tests/tiny_vlms.py (built into a temporary folder): their numbers show the
batching machinery and padding overhead, not what a real model gains on a
GPU, where a batch costs little more than one prompt. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins"))  # harness_hf before pyproject maps it
sys.path.insert(0, str(ROOT / "tests"))  # tiny_vlms

from harness.run.dispatch import Dispatcher  # noqa: E402
from harness.images import load_mask, load_rgb  # noqa: E402
from harness.plugins import load_registry  # noqa: E402
from harness.prompts import render_prompt  # noqa: E402
from harness.types import Prompt  # noqa: E402
from harness.visual import visual_prompt_images  # noqa: E402

from harness_hf import HFClassifier, HFOptions  # noqa: E402


def velm_prompts(n: int, workdir: Path) -> list[Prompt]:
    """``n`` VELM prompts for the anomalous demo images, rendered as the runner renders them."""
    from harness_datasets import demo

    root = workdir / "demo"
    per_defect = max(1, -(-n // 12))  # 3 categories x ~4 defect classes
    demo.write_demo_tree(root, seed=0, counts=demo.DemoCounts(train=2, good=1, per_defect=per_defect))
    registry = load_registry()
    data = registry.get("benchmarks", "folder").obj.load(root, None)
    template = registry.get("templates", "velm").obj
    prompts = []
    for category in data.categories:
        reference = load_rgb(category.train_images[0])
        for sample in category.test_samples:
            if not sample.is_anomalous:
                continue
            query = load_rgb(sample.image)
            region = load_mask(sample.mask, query.size) if sample.mask else None
            images = visual_prompt_images(query, reference, region)
            prompts.append(render_prompt(template, category=category, candidates=category.classes, images=images))
    return (prompts * (n // max(1, len(prompts)) + 1))[:n]


async def _dispatch_all(classifier: HFClassifier, prompts: list[Prompt]):
    dispatcher = Dispatcher(classifier)
    return await asyncio.gather(*(dispatcher.call(p) for p in prompts))


def measure(model_dir: Path, prompts: list[Prompt], batch_size: int, args) -> dict:
    options = HFOptions(batch_size=batch_size, device=args.device, dtype=args.dtype, mode=args.mode,
                        max_new_tokens=args.max_new_tokens, cache=False)
    classifier = HFClassifier(str(model_dir), options)
    loop = asyncio.new_event_loop()
    try:
        started = time.perf_counter()
        loop.run_until_complete(_dispatch_all(classifier, prompts[:1]))  # load and warm up
        load_s = time.perf_counter() - started
        passes, answers = [], None
        for _ in range(args.repeats):
            first_batch = len(classifier.batch_sizes)
            started = time.perf_counter()
            results = loop.run_until_complete(_dispatch_all(classifier, prompts))
            passes.append((time.perf_counter() - started, classifier.batch_sizes[first_batch:]))
            failed = [r for r in results if r.error]
            if failed:
                raise SystemExit(f"batch size {batch_size}: {len(failed)} requests failed: {failed[0].detail}")
            answers = [(r.response.text, r.response.option_scores) for r in results]
        described = classifier.describe()
        loop.run_until_complete(classifier.aclose())
    finally:
        loop.close()
    best_s, batches = min(passes, key=lambda p: p[0])
    tokens_in = statistics.mean(r.response.tokens_in for r in results)
    tokens_out = statistics.mean(r.response.tokens_out for r in results)
    return {"batch_size": batch_size, "seconds": best_s, "images_per_s": len(prompts) / best_s,
            "mean_batch": statistics.mean(batches), "load_s": load_s, "answers": answers,
            "device": described["device"], "dtype": described["dtype"],
            "tokens_in": tokens_in, "tokens_out": tokens_out}


def report(name: str, rows: list[dict], n: int, args) -> None:
    base = rows[0]
    print(f"\n{name}: {n} prompts of 3 images, mode {args.mode}, max_new_tokens {args.max_new_tokens}, "
          f"device {base['device']}, dtype {base['dtype']}; mean tokens in {base['tokens_in']:.0f}, "
          f"out {base['tokens_out']:.1f}; best of {args.repeats}")
    print(f"{'batch':>5}  {'images/s':>9}  {'vs batch ' + str(base['batch_size']):>11}  {'mean batch':>10}  "
          f"{'seconds':>8}  same answers as batch {base['batch_size']}")
    for row in rows:
        same = sum(a == b for a, b in zip(row["answers"], base["answers"]))
        print(f"{row['batch_size']:>5}  {row['images_per_s']:>9.2f}  {row['images_per_s'] / base['images_per_s']:>10.2f}x  "
              f"{row['mean_batch']:>10.2f}  {row['seconds']:>8.2f}  {same}/{len(row['answers'])}")


def print_setup(script: str) -> None:
    """The command as run and what torch runs on, printed above a script's table."""
    import torch

    print("command:", shlex.join(["python", script, *sys.argv[1:]]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} cpu threads, "
          f"cuda: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")


def models_to_measure(args: argparse.Namespace, workdir: Path) -> dict[str, Path]:
    """Name -> model folder: ``--model-dir``, else the tiny random ``--arch`` models (``all``: each) built in ``workdir``."""
    if args.model_dir:
        return {str(args.model_dir): args.model_dir}
    import tiny_vlms

    archs = tiny_vlms.ARCHITECTURES if args.arch == "all" else [args.arch]
    return {f"tiny {arch} (random weights)": tiny_vlms.build(arch, workdir / arch) for arch in archs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="qwen2_vl", help="tiny architecture: llava, qwen2_vl, idefics3 or all")
    parser.add_argument("--model-dir", type=Path, default=None, help="a saved model to use instead of a tiny one")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--prompts", type=int, default=32, help="prompts (flagged images) per timed pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per batch size; the best is reported")
    parser.add_argument("--mode", choices=["generate", "score"], default="generate")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    print_setup("benchmarks/hf_batching.py")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        prompts = velm_prompts(args.prompts, workdir)
        for name, model_dir in models_to_measure(args, workdir).items():
            rows = [measure(model_dir, prompts, b, args) for b in args.batch_sizes]
            report(name, rows, len(prompts), args)


if __name__ == "__main__":
    main()
