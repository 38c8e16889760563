"""Running the method: a run's parameters, imagery and models composed into the stages of
:mod:`plastics_core.method` (the pipeline functions), the per-tile job that the in-process step
and the EarthOne backend both run, and the per-tile composite cache."""
