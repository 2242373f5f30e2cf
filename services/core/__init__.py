"""What the api and scheduler services share: settings, Redis, keys, lease, claims, ledger."""
