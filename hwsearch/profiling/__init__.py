"""Profiles: exported parts and bundles, profile.csv tables and their additivity, measuring here."""
