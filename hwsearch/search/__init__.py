"""Schedule searches: gradient (DiffRate rates), measured local search, hand baselines, Optuna sampling."""
