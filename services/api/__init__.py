"""The api container: tickonce's FastAPI app under gunicorn."""
