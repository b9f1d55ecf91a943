"""Measure whole deploy-mode models on this host with the target's own backend and protocol.

The models are exported exactly as ``hwsearch profile`` exports its graphs (static-shape ONNX,
TorchScript for the torch backend) and timed in one process with interleaved repeats.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hwsearch.errors import HwsearchError
from hwsearch.models import CompressedViT
from hwsearch.profile import Exporter
from hwsearch.targets import Target


def measure_models(target: Target, models: dict[str, CompressedViT], batch: int,
                   protocol: dict[str, Any] | None = None, here: bool = False) -> dict[str, dict[str, Any]]:
    """Latency statistics (ms) per named model, measured here on ``target``'s backend.

    ``here``: run although the target is not local (hwsearch runs on the device itself).
    """
    from profilers.backends import BackendUnavailable, create_backend
    from profilers.runner import timing_protocol
    from profilers.timing import measure_interleaved

    if not (target.is_local or here):
        raise HwsearchError(f"target {target.name} is not this host: its latency can only be predicted here")
    root = Path(tempfile.mkdtemp(prefix="hwsearch-measure-"))
    try:
        first = next(iter(models.values()))
        exporter = Exporter(root, first, target)
        for name, model in models.items():
            exporter.add(name, "model", model, model.num_tokens, batch)
        try:
            backend = create_backend(target.backend, dict(target.raw), root)
        except BackendUnavailable as exc:
            raise HwsearchError(str(exc)) from None
        runners = {g.id: backend.prepare(g) for g in exporter.graphs}
        stats = measure_interleaved({k: r for k, (r, _) in runners.items()},
                                    syncs={k: s for k, (_, s) in runners.items()},
                                    **timing_protocol(target.timing, protocol))
        backend.release()
        return {k: {**v.as_dict(), "backend": target.backend} for k, v in stats.items()}
    finally:
        shutil.rmtree(root, ignore_errors=True)
