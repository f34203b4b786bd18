"""KFP components, one per file. The platform's six are defined in
``mlplatform.orchestration.components`` (installed with the package) and re-exported here
beside their compiled YAML; ``data_quality.py`` is the "Extend the platform" example."""
