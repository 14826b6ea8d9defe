"""Importing open_clip without what lutgen does not use: timm, and torch's compiler.

open_clip imports timm (about 2.7 s and 30 MB on the 2-core test machine) for its timm-based image
towers (SigLIP, EVA, ConvNeXt and others), and treats it as optional: when ``import timm`` fails,
those towers are unavailable and everything else works. :func:`open_clip_for` imports open_clip with
timm held back when the architecture about to be used has a tower of its own (ViT-B-32 and the other
OpenAI and LAION CLIPs), and brings timm in later should a model in the same process need it.

Torch's compiler (``torch._dynamo``, and Triton through it: about 150 MB resident and 1-2 s) is
imported by torchvision when open_clip imports it, only for a check in a detection operator. lutgen
compiles nothing: :func:`without_torch_compiler` puts a stand-in in its place meanwhile. The
optimiser is lutgen's own (:mod:`lutgen.optim.adam`), and model skeletons are built without the
arithmetic on ``meta`` tensors (:mod:`lutgen.guidance.loading`), for the same reason. Anything that
needs the real compiler later in the process imports it as usual.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import torch

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
            with without_torch_compiler():
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


_COMPILER = "torch._dynamo"


@contextmanager
def without_torch_compiler() -> Iterator[None]:
    """Meanwhile, ``torch._dynamo`` is a stand-in, unless the real one is imported already.

    The stand-in has what torchvision's import asks of it, ``utils.is_compile_supported``, which
    defers to the real one if it is ever called. Afterwards ``torch._dynamo`` imports for real.
    """
    if _COMPILER in sys.modules:
        yield
        return
    stand_in = ModuleType(_COMPILER)
    stand_in.__path__ = []
    utils = ModuleType(f"{_COMPILER}.utils")
    utils.is_compile_supported = _is_compile_supported
    stand_in.utils = utils
    sys.modules[_COMPILER], sys.modules[utils.__name__] = stand_in, utils
    try:
        yield
    finally:
        for name, module in ((_COMPILER, stand_in), (utils.__name__, utils)):
            if sys.modules.get(name) is module:
                del sys.modules[name]
        if torch.__dict__.get("_dynamo") is stand_in:
            del torch._dynamo


def _is_compile_supported(device_type) -> bool:
    from torch._dynamo.utils import is_compile_supported

    return is_compile_supported(device_type)
