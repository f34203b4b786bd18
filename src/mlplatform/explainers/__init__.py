"""Adapters that run third-party explainers on the platform's models (reference paths)."""
