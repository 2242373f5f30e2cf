"""The scheduler service: a leader and hot standbys contending for one lease."""
