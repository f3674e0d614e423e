"""An evaluation harness for multimodal LLMs on industrial anomaly classification.

The core knows no backend SDK, no model and no dataset format: those arrive as
pluggy plugins (see :mod:`harness.hookspecs`).
"""

__version__ = "0.1.0"
