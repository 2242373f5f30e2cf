"""Test helpers: real Redis servers, real processes, ledger checks."""
