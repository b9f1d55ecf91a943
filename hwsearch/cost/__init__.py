"""Cost models: analytic FLOPs and fitted measured latency/energy, one interface."""
from hwsearch.cost.base import Budget, CostModel, check_reachable
from hwsearch.cost.flops import FlopsCost
from hwsearch.cost.measured import MeasuredCost

__all__ = ["Budget", "CostModel", "FlopsCost", "MeasuredCost", "check_reachable"]
