"""An example team app: its own routes, dependency and lifespan, with tickonce included."""
