"""Migrations of the payloads store."""
