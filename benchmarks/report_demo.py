"""Demo runs for the `harness report` screenshot (docs/report.png): two real classifiers, two simulated APIs.

    python benchmarks/report_demo.py OUT_DIR [--screenshot PATH]

What is real and what is not:

- ``random`` and ``knn`` are the real first-party classifiers (uniform random
  choice; nearest labelled example by EfficientNet-Lite0 embedding, 3 shots).
- ``openai:loopback-random`` and ``anthropic:loopback-random`` are the real
  ``openai`` and ``anthropic`` plugins and SDK clients, talking to the
  harness's loopback servers (`harness.testing.loopback`) on 127.0.0.1. **No model
  answers**: each server picks a candidate class at random (seeded by the
  request's content), and now and then refuses, answers vaguely, or fails with
  a 400, so the report has every kind of row and card to show. The model ids
  are named so that nobody takes these rows for real model results. They have
  no price in ``harness/prices.toml``, so their cost is unknown (shown as "-").

The demo benchmark is run twice, with the ``oracle`` and ``patchcore`` gates,
into ``OUT_DIR/results`` (run ids ``demo-oracle`` and ``demo-patchcore``);
``harness report`` then writes ``OUT_DIR/report.html``. Where Chromium and
websocket-client are installed, the page is opened headless and a picture of
it is saved (default ``OUT_DIR/report.png``): the top of the page (leaderboard
and trade-off plots) above the start of the gallery.

The runs use ``--no-cache``, and the API keys of the environment are removed
from the runs' environment: the loopback servers need none and are sent none.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw

from harness.testing.browser import Browser, find_chromium
from harness.testing.loopback import Fault, LoopbackServer, Request

GATES = ("oracle", "patchcore")
SIMULATED = {"openai": "openai:loopback-random", "anthropic": "anthropic:loopback-random"}


def random_answerer(salt: str, refuse: float, vague: float, fail: float):
    """A loopback responder that names a random candidate class, with some refusals, vague answers and 400s.

    The candidates are read from the prompt's numbered class list (``1. crack: ...``),
    as a model would read them. The choice is seeded by ``salt`` and the request body,
    so a rerun gives the same answers whatever order the requests arrive in.
    """

    def answer(request: Request):
        text = "\n".join(request.texts())
        names = re.findall(r"^\d+\. ([^:\n]+)", text, re.M)
        digest = hashlib.sha256(json.dumps(request.body, sort_keys=True).encode()).hexdigest()
        rng = random.Random(f"{salt}:{digest}")
        roll = rng.random()
        if roll < fail:
            return Fault.error(400, "image exceeds the size this model accepts (simulated)")
        if roll < fail + refuse:
            return "I'm sorry, but I can't determine the defect from these images."
        if roll < fail + refuse + vague:
            return "The part shows some kind of surface irregularity near the outlined area."
        return f"The defect is {rng.choice(names)}." if names else "I see no list of classes."

    return answer


def harness(*args: str) -> None:
    """Run the `harness` console entry point with this interpreter; stop the script if it fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    command = [sys.executable, "-c", "from harness.cli import main; main()", *args]
    print("harness", " ".join(args), flush=True)
    finished = subprocess.run(command, env=env)
    if finished.returncode != 0:
        sys.exit(finished.returncode)


def write_config(path: Path, openai_url: str, anthropic_url: str) -> None:
    openai_spec, anthropic_spec = SIMULATED["openai"], SIMULATED["anthropic"]
    path.write_text(textwrap.dedent(f"""\
        # Written by benchmarks/report_demo.py. The two API models are loopback simulations that
        # answer at random; their URLs were ephemeral ports of that script's run.
        benchmark = "demo"
        models = ["random", "knn", "{openai_spec}", "{anthropic_spec}"]
        shots = 3

        [model-options."{openai_spec}"]
        base_url = "{openai_url}"
        concurrency = 8

        [model-options."{anthropic_spec}"]
        base_url = "{anthropic_url}"
        concurrency = 8
    """))


def run_demo(out: Path) -> Path:
    """The two runs and the report; returns the report's path."""
    results = out / "results"
    config = out / "demo.toml"
    # Different error mixes and latencies, so the two simulated rows differ in the report.
    with LoopbackServer(random_answerer("openai", refuse=0.03, vague=0.06, fail=0.02),
                        latency_s=0.12, max_seconds=1800) as fast, \
         LoopbackServer(random_answerer("anthropic", refuse=0.05, vague=0.02, fail=0.0),
                        latency_s=0.35, max_seconds=1800) as slow:
        write_config(config, fast.openai_base_url, slow.anthropic_base_url)
        for gate in GATES:
            harness("run", "--config", str(config), "--gate", gate, "--results-dir", str(results),
                    "--run-id", f"demo-{gate}", "--no-cache")
        if fast.errors or slow.errors:
            sys.exit(f"a loopback responder failed: {fast.errors + slow.errors}")
    report = out / "report.html"
    harness("report", *(f"demo-{gate}" for gate in GATES), "--results-dir", str(results), "--output", str(report))
    return report


def screenshot(report: Path, target: Path, cards: int = 4) -> None:
    """The page's top (header, leaderboard, trade-off plots) over the gallery down to its first ``cards`` cards."""
    with tempfile.TemporaryDirectory(prefix="report-demo-chromium-") as profile, Browser(Path(profile)) as browser:
        browser.load(report)
        if browser.problems():
            sys.exit(f"the report has problems in the browser: {browser.problems()}")
        box = browser.evaluate(
            "(() => { const t = document.getElementById('tradeoffs').getBoundingClientRect();"
            " const g = document.getElementById('gallery').getBoundingClientRect();"
            " const c = Array.from(document.querySelectorAll('#gallery .card')).slice(0, %d)"
            "   .map(e => e.getBoundingClientRect().bottom);"
            " return {top_end: t.bottom + window.scrollY, gallery: g.top + window.scrollY,"
            "         cards_end: Math.max(g.top + 400, ...c) + window.scrollY}; })()" % cards
        )
        top = browser.screenshot(0, box["top_end"] + 12)
        gallery = browser.screenshot(box["gallery"] - 8, box["cards_end"] - box["gallery"] + 20)
    top, gallery = (Image.open(io.BytesIO(png)).convert("RGB") for png in (top, gallery))
    # A dashed rule where the middle of the page (gate, errors, confusion) was left out.
    gap = 24
    picture = Image.new("RGB", (top.width, top.height + gap + gallery.height), "white")
    picture.paste(top, (0, 0))
    picture.paste(gallery, (0, top.height + gap))
    draw = ImageDraw.Draw(picture)
    y = top.height + gap // 2
    for x in range(0, picture.width, 16):
        draw.line([(x, y), (x + 8, y)], fill=(150, 150, 150), width=2)
    # 256 colours keep the file small; the page is mostly flat colour and small thumbnails.
    picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(target, optimize=True)
    print(f"screenshot written to {target} ({target.stat().st_size / 1024:.0f} KB, {picture.width}x{picture.height})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the runs, the report and the screenshot")
    parser.add_argument("--screenshot", type=Path, default=None, help="PNG to write [default: OUT/report.png]")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = run_demo(args.out)
    try:
        import websocket  # noqa: F401 (only to know whether the browser can be driven)
    except ImportError:
        print("no screenshot: websocket-client is not installed (pip install -e '.[dev]')")
        return
    if find_chromium() is None:
        print("no screenshot: no chromium on PATH (on Debian: apt-get install chromium)")
        return
    screenshot(report, args.screenshot or args.out / "report.png")


if __name__ == "__main__":
    main()
