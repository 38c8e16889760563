"""SyntheticSource: seeded synthetic Sentinel-2 L1C scenes with planted waste sites.

Implements :class:`plastics_core.imagery.base.ImagerySource` on top of
:func:`plastics_core.synthetic.generator.make_scene_stack` (see there for the background, clouds,
haze and the t0/t1 signature phase). Used by tests, demos and offline runs: no network.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from plastics_core.geo.periods import Period
from plastics_core.imagery.base import SceneInfo
from plastics_core.synthetic.generator import (
    acquisition_dates,
    make_scene_stack,
    scene_cloud_cover,
    synthetic_scene_id,
)
from plastics_core.synthetic.sites import PlantedSite

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from plastics_core.geo.scenes import SceneStack
    from plastics_core.geo.tiles import Tile


def _overlaps(a: Period, b: Period) -> bool:
    return a.start < b.end and b.start < a.end


class SyntheticSource:
    """Deterministic synthetic imagery.

    - ``sites``: planted waste sites (EPSG:4326 polygons).
    - ``seed``: everything (background offset, dates, clouds, haze, noise) follows from it.
    - ``shared_dir``: where ``data/s2l1c_slovenia_2015`` lives (default ``$PLASTICS_SHARED``
      or ``<repo>/../shared``); without it the background is synthetic land cover.
    - ``scenes_per_month``: acquisitions per month (3 = every 10 days, Sentinel-2A's revisit
      alone; 6 = every 5 days). 3 keeps a 3-month tile-period to 9 scenes (fast demo and tests).
    - ``cloud_fraction``: mean cloud cover per scene (each scene draws 0..2x this).
    - ``empty_periods``: acquisitions in these periods do not exist (search/load return none).
    - ``cloudy_periods``: acquisitions in these periods are 100 % cloud (all pixels masked).
    """

    def __init__(
        self,
        sites: Sequence[PlantedSite] = (),
        seed: int = 0,
        shared_dir: Path | None = None,
        scenes_per_month: int = 3,
        cloud_fraction: float = 0.25,
        empty_periods: Sequence[Period] = (),
        cloudy_periods: Sequence[Period] = (),
        haze: float = 250.0,
    ) -> None:
        self.sites = list(sites)
        self.seed = int(seed)
        self.shared_dir = shared_dir
        self.scenes_per_month = int(scenes_per_month)
        self.cloud_fraction = float(cloud_fraction)
        self.empty_periods = list(empty_periods)
        self.cloudy_periods = list(cloudy_periods)
        self.haze = float(haze)
        self.name = "synthetic"

    def __repr__(self) -> str:
        return f"SyntheticSource(sites={[s.name for s in self.sites]}, seed={self.seed})"

    def _subperiods(self, period: Period) -> list[tuple[Period, bool]]:
        """``period`` cut at empty/cloudy boundaries -> [(sub-period, cloudy)], empty parts dropped."""
        cuts = {period.start, period.end}
        for p in (*self.empty_periods, *self.cloudy_periods):
            cuts.update(d for d in (p.start, p.end) if period.start < d < period.end)
        edges = sorted(cuts)
        out = []
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            sub = Period(a, b)
            if any(_overlaps(sub, e) for e in self.empty_periods):
                continue
            out.append((sub, any(_overlaps(sub, c) for c in self.cloudy_periods)))
        return out

    def search(self, geometry_4326: BaseGeometry, period: Period) -> list[SceneInfo]:
        """Acquisitions in ``period`` (the synthetic world covers every geometry)."""
        out = []
        for sub, cloudy in self._subperiods(period):
            for day in acquisition_dates(sub, self.seed, self.scenes_per_month):
                cover = 100.0 if cloudy else 100.0 * scene_cloud_cover(day, self.seed, self.cloud_fraction)
                out.append(SceneInfo(synthetic_scene_id(day, self.seed), day, round(cover, 1)))
        return out

    def load(self, tile: Tile, period: Period) -> SceneStack:
        """Scenes of ``period`` on ``tile``'s grid: (t, 12, y, x) uint16 DN + cloud mask."""
        stacks = [
            make_scene_stack(
                tile.crs,
                tile.transform,
                tile.shape,
                sub,
                self.seed,
                self.sites,
                shared_dir=self.shared_dir,
                scenes_per_month=self.scenes_per_month,
                cloud_fraction=self.cloud_fraction,
                haze=self.haze,
                cloudy=cloudy,
            )
            for sub, cloudy in self._subperiods(period)
        ]
        if len(stacks) == 1:
            return stacks[0]
        if not stacks:  # the whole period is empty
            return make_scene_stack(
                tile.crs,
                tile.transform,
                tile.shape,
                period,
                self.seed,
                [],
                shared_dir=self.shared_dir,
                scenes_per_month=0,
            )
        from plastics_core.geo.scenes import SceneStack

        return SceneStack(
            data=np.concatenate([s.data for s in stacks]),
            mask=np.concatenate([s.mask for s in stacks]),
            crs=tile.crs,
            transform=tile.transform,
            dates=tuple(d for s in stacks for d in s.dates),
            scene_ids=tuple(i for s in stacks for i in s.scene_ids),
        )

    def describe(self) -> str:
        """A JSON string of the configuration (for manifests)."""
        return json.dumps(
            {
                "source": "synthetic",
                "seed": self.seed,
                "scenes_per_month": self.scenes_per_month,
                "cloud_fraction": self.cloud_fraction,
                "sites": [s.name for s in self.sites],
                "empty_periods": [p.label for p in self.empty_periods],
                "cloudy_periods": [p.label for p in self.cloudy_periods],
            },
            sort_keys=True,
        )
