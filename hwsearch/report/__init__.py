"""Reports: PNG plots, method comparison tables, HTML pages."""
