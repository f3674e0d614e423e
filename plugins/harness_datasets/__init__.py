"""First-party datasets: MVTec-AD, MVTec-AC, VisA-AC, VisA, any MVTec-style folder, and the demo.

Registered through the ``harness`` entry-point group exactly as a third-party
plugin would be.
"""

from harness.hookspecs import hookimpl


@hookimpl(trylast=True)  # first-party: a third-party plugin may override a name
def register_benchmarks(register):
    """Register every benchmark of this plugin."""
    from harness_datasets.benchmarks import all_benchmarks

    for benchmark in all_benchmarks():
        register(benchmark)
