"""Revisions of the alerts store, oldest first."""
