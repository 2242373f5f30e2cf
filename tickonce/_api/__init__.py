"""tickonce's HTTP API over FastAPI: ``include_tickonce`` (``integration``), its own app
(``app``), one module per resource under ``routes``, and the status page (``static``).
"""
