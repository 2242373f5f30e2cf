"""The two containers' entry points (api, scheduler) and the jobs the compose stack ships;
the library they run is the ``tickonce`` package."""
