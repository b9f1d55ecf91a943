"""hwsearch: hardware-aware token-compression search for Vision Transformers."""
from hwsearch.errors import HwsearchError

__version__ = "0.1.0"


def apply_schedule(model, schedule):  # type: ignore[no-untyped-def]
    """Deploy-mode model for any timm ViT: see :func:`hwsearch.models.apply_schedule`."""
    from hwsearch.models import apply_schedule as _apply

    return _apply(model, schedule)


__all__ = ["HwsearchError", "apply_schedule", "__version__"]
