"""Inference backends behind one small interface; import is lazy so missing libraries only
matter for the backend that needs them."""
from profilers.backends.base import BACKENDS, Backend, BackendUnavailable, create_backend

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "create_backend"]
