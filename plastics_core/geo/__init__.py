"""Grids and geometry: bands, periods, rasters, scene stacks, tiles, ROIs."""
