"""Revisions of the payloads store, oldest first."""
