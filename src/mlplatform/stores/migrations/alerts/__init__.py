"""Migrations of the alerts store."""
