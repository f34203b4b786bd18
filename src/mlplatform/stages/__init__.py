"""Use cases, one module per stage of the training loop, each with its own file I/O:

    data → normalize → train → explain → gate → register

A stage takes the one :class:`~mlplatform.config.PlatformConfig` and paths, calls the core
and the adapters, and writes its outputs. The CLI, the KFP components (one per stage, in
:mod:`mlplatform.orchestration.components`) and the demo call these functions.
"""

from mlplatform.stages.data import (
    data_step,
    generate_data,
    materialize_features,
    push_data,
    versioned_config,
)
from mlplatform.stages.explain import explain_model_job, explain_row_job, explain_step
from mlplatform.stages.gate import gate_step
from mlplatform.stages.normalize import normalize_step, read_normalization
from mlplatform.stages.register import config_hash, flat_params, register_step
from mlplatform.stages.train import TrainOutputs, metrics_document, train_job, train_step

__all__ = [
    "TrainOutputs",
    "config_hash",
    "data_step",
    "explain_model_job",
    "explain_row_job",
    "explain_step",
    "flat_params",
    "gate_step",
    "generate_data",
    "materialize_features",
    "metrics_document",
    "normalize_step",
    "push_data",
    "read_normalization",
    "register_step",
    "train_job",
    "train_step",
    "versioned_config",
]
