"""What tickonce keeps in Redis and how it reaches it: every key name (``keys``), the clients
and what counts as Redis trouble (``clients``), the data's layout and format (``layout``),
durable writes (``durability``) and the counters /metrics renders (``counters``).
"""
