"""Atomic writes and provenance for everything under results/."""
from __future__ import annotations

import json
import os
import platform
import re
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwsearch.errors import HwsearchError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600: results are ordinary files
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cache_dir() -> Path:
    """hwsearch's cache (converted checkpoints, the host-wide timing lock): ``$HWSEARCH_CACHE`` or
    ``~/.cache/hwsearch``."""
    return Path(os.environ.get("HWSEARCH_CACHE", Path.home() / ".cache" / "hwsearch"))


def write_text(path: str | Path, text: str) -> None:
    """Write text atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def safe_name(value: str, what: str) -> str:
    """``value`` when it is a plain file/folder name (letters, digits, ``_ . -``), else one error."""
    if not SAFE_NAME.match(value) or ".." in value:
        raise HwsearchError(f"{what} {value!r} is not a plain name (letters, digits, _ . -; no path)")
    return value


def redact(url: str) -> str:
    """A storage URL without its password (for printing)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "://" not in url or parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def json_object_or_none(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path`` (possibly empty), or None when missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or {} when missing or unreadable (callers decide what that means)."""
    return json_object_or_none(path) or {}


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically; NaN and infinity are refused (not JSON, and never a real measurement)."""
    try:
        text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
    except ValueError:
        raise HwsearchError(f"refusing to write {path}: it holds NaN or infinity (a failed measurement or fit)"
                            ) from None
    write_text(path, text + "\n")


def plain(data: Any) -> Any:
    """Only JSON/YAML-safe types (tuples to lists, str subclasses and other objects to str)."""
    return json.loads(json.dumps(data, default=str))


def provenance(command: str | None = None) -> dict[str, Any]:
    """Versions, host and command: written beside every result."""
    import numpy
    import torch

    info: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "numpy": numpy.__version__,
        "command": command if command is not None else " ".join(sys.argv),
    }
    try:
        import timm

        info["timm"] = timm.__version__
    except ImportError:  # pragma: no cover - timm is a dependency
        pass
    from hwsearch import __version__

    info["hwsearch"] = __version__
    return info
