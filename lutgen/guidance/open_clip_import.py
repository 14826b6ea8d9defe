"""Importing open_clip without timm when the model in use does not need it.

open_clip imports timm (about 2.7 s and 30 MB on the 2-core test machine) for its timm-based image
towers (SigLIP, EVA, ConvNeXt and others), and treats it as optional: when ``import timm`` fails,
those towers are unavailable and everything else works. :func:`open_clip_for` imports open_clip with
timm held back when the architecture about to be used has a tower of its own (ViT-B-32 and the other
OpenAI and LAION CLIPs), and brings timm in later should a model in the same process need it.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from lutgen.guidance.config import architecture_config


def needs_timm(model_cfg: dict | None) -> bool:
    """Whether a model of ``model_cfg`` (None: not known) may need timm: a timm image tower, or unknown."""
    if not isinstance(model_cfg, dict):
        return True
    vision = model_cfg.get("vision_cfg")
    return not isinstance(vision, dict) or bool(vision.get("timm_model_name"))


def open_clip_for(model_name: str) -> ModuleType:
    """The ``open_clip`` module, ready to build ``model_name`` (any ``--clip-model`` value).

    The first import leaves timm out when the model's configuration (read without open_clip,
    :func:`~lutgen.guidance.config.architecture_config`) shows a tower of open_clip's own.
    """
    adapter = sys.modules.get("open_clip.timm_model")
    if adapter is not None and getattr(adapter, "timm", None) is not None:
        return sys.modules["open_clip"]  # imported with timm already: any model can be built
    timm_needed = needs_timm(architecture_config(model_name))
    if "open_clip" not in sys.modules and not timm_needed and "timm" not in sys.modules:
        sys.modules["timm"] = None  # `import timm` raises ImportError meanwhile; open_clip goes without
        try:
            import open_clip  # noqa: F401
        finally:
            if "timm" in sys.modules and sys.modules["timm"] is None:
                del sys.modules["timm"]
    import open_clip

    if timm_needed:
        _bring_in_timm(open_clip)
    return open_clip


def _bring_in_timm(open_clip: ModuleType) -> None:
    """Give open_clip its timm towers if it was imported without them (a reload of its timm adapter:
    the classes already handed out see the same module globals, now with timm)."""
    adapter = sys.modules.get("open_clip.timm_model")
    if adapter is None or getattr(adapter, "timm", None) is not None:
        return
    try:
        import timm  # noqa: F401
    except ImportError:  # not installed: open_clip says so itself when a timm tower is built
        return
    importlib.reload(adapter)
