"""Imagery sources: the ImagerySource protocol and its implementations."""

from plastics_core.imagery.base import ImagerySource, SceneInfo

__all__ = ["ImagerySource", "SceneInfo"]
