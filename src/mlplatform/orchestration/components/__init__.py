"""The platform's KFP components, one per stage and file. Each body parses its inputs, calls
one function of :mod:`mlplatform.stages` and writes its outputs; the logic lives in the stage."""
