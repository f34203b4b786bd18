"""The training pipeline: data → normalize → train_gd → explain → validate → (if passed) register.

Defined in :mod:`mlplatform.orchestration.training_pipeline` (the installed package); this
file names the compiled YAML in the repository. ``python -m pipelines.training_pipeline`` (or
``make compile``) writes ``pipelines/training_pipeline.yaml``, the file to upload in the KFP
UI, and ``components/*.yaml``.
"""

from pathlib import Path

from mlplatform.orchestration.training_pipeline import (
    COMPONENTS,
    PIPELINE_NAME,
    compile_components,
    compile_pipeline,
    training_pipeline,
)

COMPILED = Path(__file__).with_name("training_pipeline.yaml")
COMPONENT_DIR = Path(__file__).resolve().parents[1] / "components"

__all__ = [
    "COMPILED",
    "COMPONENTS",
    "COMPONENT_DIR",
    "PIPELINE_NAME",
    "compile_components",
    "compile_pipeline",
    "training_pipeline",
]

if __name__ == "__main__":
    print(compile_pipeline(COMPILED))
    for p in compile_components(COMPONENT_DIR):
        print(p)
