"""Schedule searches: gradient (DiffRate) now; Optuna sampled search in the Optuna issue."""
from hwsearch.search.gradient import SearchConfig, SearchResult, gradient_search

__all__ = ["SearchConfig", "SearchResult", "gradient_search"]
