"""Pipeline definitions (wiring only) and their compiled YAML for the KFP UI."""
