"""MLflow adapter: runs, model versions, aliases and lineage."""
