"""A device bundle for a schedule, when the engine must be built and measured on the device."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hwsearch.model.build import model_hash
from hwsearch.model.vit import CompressedViT
from hwsearch.profiling.export import Exporter, make_tarball, temp_bundle_dir
from hwsearch.schedule import Schedule, as_lists
from hwsearch.targets import Target
from profilers.bundle import Bundle

README = """# hwsearch deploy bundle: {name}, schedule {stem}, target {target}
On the device:
    python3 -m profilers build-engine bundle/   # TensorRT engines in bundle/engines/ (+ trtexec lines)
    python3 -m profilers run bundle/            # dense and compressed timed, bundle/measurements.csv
"""


def device_bundle(target: Target, vit: Any, name: str, model: CompressedViT, out_dir: Path, stem: str, batch: int,
                  schedule: Schedule) -> dict[str, Any]:
    """Export only on this host, plus a bundle that builds and measures the engine on the device."""
    work = temp_bundle_dir()
    try:
        dense = CompressedViT(vit)
        exporter = Exporter(work, dense, target)
        exporter.add("dense", "model", dense, model.num_tokens, batch)
        exporter.add(stem, "model", model, model.num_tokens, batch, schedule=as_lists(schedule.counts()))
        Bundle(work, name, model_hash(vit, name), dict(target.raw), exporter.graphs).save()
        tar = make_tarball(work, out_dir / f"{stem}.{target.name}.bundle.tar.gz",
                           README.format(name=name, stem=stem, target=target.name))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    why = ("TensorRT is not installed on this host" if target.backend == "tensorrt"
           else f"{target.name} is not this host")
    print(f"{why}: exported ONNX only, plus {tar} to build and measure on the device "
          f"(python3 -m profilers build-engine bundle/ && python3 -m profilers run bundle/)")
    return {"engine": None, "status": f"exported only: {why}", "device_bundle": str(tar)}
