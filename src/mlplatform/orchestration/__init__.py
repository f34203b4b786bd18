"""Orchestration: the training pipeline and its components (KFP), the local runner
(``kfp.local``) and the retrain trigger that starts a run for each drift alert."""
