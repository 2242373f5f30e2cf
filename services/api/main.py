"""The api container's ASGI app: ``services.api.main:app``, served by gunicorn with
``uvicorn_worker.UvicornWorker`` (deploy/gunicorn.conf.py). tickonce's API at the root of an
app of its own; a team's own app gets the same with ``tickonce.include_tickonce``."""

from tickonce._api.app import create_app

app = create_app()
