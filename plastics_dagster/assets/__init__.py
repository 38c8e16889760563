"""The detection graph's assets: detection group (descartes_run, heatmaps, patch_geojson) and
sites group (blobs, candidates, contours, enriched_sites)."""

from plastics_dagster.assets.detection import descartes_run, heatmaps, patch_geojson
from plastics_dagster.assets.sites import blobs, candidates, contours, enriched_sites

DETECT_ASSETS = [descartes_run, heatmaps, patch_geojson, blobs, candidates, contours, enriched_sites]

__all__ = [
    "DETECT_ASSETS",
    "blobs",
    "candidates",
    "contours",
    "descartes_run",
    "enriched_sites",
    "heatmaps",
    "patch_geojson",
]
