"""Serving adapters: KServe predictor, Feast transformer and LIME/Anchor explainer, the canary
router, the payload log and the rollout controller. Nothing starts at import."""
