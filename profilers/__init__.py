"""Device-side measurement package: runs without torch, timm, optuna or sklearn.

Backends, power meters and ``python -m profilers run BUNDLE`` arrive with the profilers issue;
the timing protocol (:mod:`profilers.timing`) is shared with ``hwsearch evaluate`` already.
"""
from profilers.timing import TimingStats, measure, measure_interleaved

__all__ = ["TimingStats", "measure", "measure_interleaved"]
