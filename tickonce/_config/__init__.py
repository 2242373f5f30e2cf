"""Configuration: every setting in one class (``settings``), logging (``logs``), and what both
services do at start (``startup``).
"""
