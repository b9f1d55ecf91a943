"""hwsearch: hardware-aware token-compression search for Vision Transformers.

Public API, like ToMe's ``tome.patch.timm``::

    fast = hwsearch.apply_schedule(timm_model, hwsearch.load_schedule("schedule.yaml"))
"""
from hwsearch.errors import HwsearchError
from hwsearch.schedule import Schedule, load_schedule

__version__ = "0.1.0"


def apply_schedule(model, schedule, merging="rank"):  # type: ignore[no-untyped-def]
    """Deploy-mode model for any timm ViT: see :func:`hwsearch.model.vit.apply_schedule`."""
    from hwsearch.model.vit import apply_schedule as _apply  # torch and timm load on first use

    return _apply(model, schedule, merging)


__all__ = ["HwsearchError", "Schedule", "apply_schedule", "load_schedule", "__version__"]
