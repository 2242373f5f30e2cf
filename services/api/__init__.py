"""The API service: job state, run history, leader status and health, over FastAPI."""
