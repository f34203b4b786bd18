"""``make demo``: the whole loop on one machine, told as a story.

:mod:`.report` runs the worked examples and writes ``REPORT.md``; :mod:`.loop` is the closed
loop (train → serve → drift → alert → retrain → canary → promote → lineage); :mod:`.rig`
builds its world and config; :mod:`.clients` are the clients sending traffic.
"""

from mlplatform.demo.report import run_demo

__all__ = ["run_demo"]
