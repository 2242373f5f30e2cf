"""``make bench-peers``: tickonce side by side with what users would pick instead, each system
in its own virtualenv, the same job bodies recording their own start, the same machine and the
same run (bench/PEERS.md)."""
