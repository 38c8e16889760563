"""Seeded synthetic Sentinel-2 scenes with planted sites (demo and tests)."""
