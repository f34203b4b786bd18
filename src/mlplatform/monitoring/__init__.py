"""The monitor job: logged payloads against the training reference (data drift, concept drift,
system health), Evidently's HTML report for people, and durable alerts for the retrain trigger.

Modules: :mod:`.monitor` (``run_monitor``; settings: the config's ``monitor`` section),
:mod:`.windows` (which window is judged, times as ISO-8601), :mod:`.payload_window` (payload
log → frames), :mod:`.alert_store` (SQLite alerts and retrain claims),
:mod:`.evidently_report` (the Evidently adapter). Importing the package has no side effects
and does not import Evidently.
"""
