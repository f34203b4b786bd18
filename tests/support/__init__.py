"""Helpers shared by tests (servers, stand-ins). Tests import these, never each other."""
