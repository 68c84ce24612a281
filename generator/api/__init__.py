"""Easel's own API (issue #17): Meteron-compatible, on the same form, limits and ledger."""
