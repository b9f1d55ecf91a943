"""Which device this is, and whether a target's numbers may be measured on it: ``deploy`` measures
only on the device its target names (``device_name`` in the GPU's name or the Jetson board's model,
case-insensitive) or when asked with ``--here``, and always says which device measured."""
from __future__ import annotations

import platform
from pathlib import Path

from hwsearch.targets import Target

BOARD_MODEL = Path("/proc/device-tree/model")  # Jetson: e.g. "NVIDIA Jetson AGX Orin Developer Kit"


def this_device(kind: str) -> str:
    """This machine's name for a target's ``device`` kind: the board model (jetson), the first GPU's
    name (cuda), the CPU model (cpu); ``unknown ...`` where it cannot be read."""
    if kind == "jetson":
        try:
            return BOARD_MODEL.read_bytes().rstrip(b"\0").decode(errors="replace").strip()
        except OSError:
            return "unknown (no Jetson board model: /proc/device-tree/model is missing)"
    if kind == "cuda":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "unknown (no CUDA device)"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def may_measure(target: Target, device: str, here: bool) -> tuple[bool, str]:
    """(measure on this device?, why): a local target, a device whose name holds the target's
    ``device_name``, or ``here`` (the user's word)."""
    if target.is_local:
        return True, f"{target.name} is this host ({device})"
    if here:
        return True, f"--here: measured on {device}, reported for {target.name}"
    wanted = target.raw.get("device_name")
    if wanted and wanted.lower() in device.lower():
        return True, f"this is {device}, the device {target.name} names ({wanted})"
    need = f"a device named like {wanted!r}" if wanted else "its device (the target file has no device_name)"
    return False, f"this is {device}, not {need}: {target.name} is not measured here (--here to measure anyway)"
