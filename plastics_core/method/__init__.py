"""The detection method's stages: composites -> pairs -> heatmaps/patch scores -> blobs -> candidates -> contours -> enriched sites."""
