"""Presentation: the offline map preview, site tables, per-site reports, thumbnails."""
