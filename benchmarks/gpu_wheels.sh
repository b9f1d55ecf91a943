#!/usr/bin/env bash
# The wheel folder for benchmarks/gpu_check.py on a CUDA machine with no network that has only
# torch, numpy and nvidia-ml-py: benchmarks/gpu_requirements.txt and their dependencies, for
# CPython 3.12 on x86-64 Linux, torchvision matching the machine's torch. Not committed.
#
#   benchmarks/gpu_wheels.sh [--torch 2.11.0] [--python 3.12] [--out .whl]
#
# Packages (pure Python unless marked): timm, huggingface_hub, click, filelock, fsspec, hf-xet (binary),
# httpx2, httpcore2, anyio, idna, h11, truststore, packaging, typing_extensions, pyyaml (binary),
# safetensors (binary), tqdm, onnx (binary), protobuf (binary), ml_dtypes (binary), pillow (binary),
# torchvision (binary). About 33 MB; refused above 60 MB.
set -euo pipefail
torch=2.11.0 python=3.12 out=.whl
while [ $# -gt 0 ]; do
  case "$1" in
    --torch) torch=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--torch X.Y.Z] [--python 3.12] [--out DIR]" >&2; exit 2 ;;
  esac
done
IFS=. read -r major minor patch <<<"$torch"
[ "$major" = 2 ] || { echo "gpu_wheels.sh: torch 2.x expected (got $torch)" >&2; exit 2; }
torchvision="0.$((minor + 15)).${patch:-0}"   # torch 2.11 <-> torchvision 0.26, 2.14 <-> 0.29
packages=(timm huggingface_hub click filelock fsspec hf-xet httpx2 httpcore2 anyio idna h11 truststore
          packaging typing_extensions pyyaml safetensors tqdm onnx protobuf ml_dtypes pillow
          "torchvision==$torchvision")
mkdir -p "$out"
for pkg in "${packages[@]}"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$python" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$out" "$pkg" 2>&1 | grep -v "^WARNING: Location" || true
  ls "$out" | grep -qi "^$(echo "${pkg%%==*}" | tr - _)-" || { echo "gpu_wheels.sh: no wheel for $pkg" >&2; exit 1; }
done
size=$(du -sm "$out" | cut -f1)
ls -1 "$out"
echo "$out: $(ls "$out" | wc -l) wheels, ${size} MB (torchvision $torchvision for torch $torch)"
[ "$size" -le 60 ] || { echo "gpu_wheels.sh: $out is over 60 MB" >&2; exit 1; }
