"""The scheduler container: a leader and hot standbys contending for the lease."""
