"""The one container image every component, server and job runs from. Defined here once;
the Helm chart and the compiled pipeline take it from this module (tests check they agree)."""

IMAGE_REPOSITORY = "ghcr.io/mlplatform/mlplatform"
IMAGE_TAG = "0.1.0"
IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
