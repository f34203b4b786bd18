"""KFP components, one per file. Each body parses its inputs, calls one function of
``mlplatform.steps`` and writes its outputs; the logic lives in the package."""
