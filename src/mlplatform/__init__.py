"""mlplatform: a Kubernetes-native ML platform blueprint.

The math lives in :mod:`mlplatform.core` (plain, typed numpy/pandas); everything
else (CLI, KFP components, servers, registry, feature store) is a thin adapter.
"""

__version__ = "0.1.0"
