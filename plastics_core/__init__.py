"""plastics_core: the pure-Python detection method of Global Plastic Watch, re-created.

Every stage is a plain, typed function over numpy arrays, rasters and GeoDataFrames.
This package never imports dagster, and only ``plastics_core.models.infer`` imports
TensorFlow/Keras (lazily).
"""

__version__ = "0.1.0"
#: Version of the detection method's code: part of every run hash, so bump it whenever a change
#: of code changes outputs (old tiles are then never reused).
METHOD_VERSION = "2"
