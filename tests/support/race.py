"""Race processes against each other: each gets ready (imports, connections), then all are
released at once, by a line on their stdin rather than a wall-clock start time.

A racing script calls ``READY`` where it would wait for the start:

>>> SCRIPT = "import sys\\n" + READY + "print(sys.argv[1])\\n"
>>> run_together([[sys.executable, "-c", SCRIPT, str(i)] for i in range(3)])
['0', '1', '2']
"""

from __future__ import annotations

import subprocess

#: Python lines for a racing script (``sys`` imported): say ready, wait for the start signal.
READY = "print('ready', flush=True)\nsys.stdin.readline()\n"


def run_together(commands: list[list[str]], timeout: float = 120.0) -> list[str]:
    """Start every command, wait until each has printed ``ready``, release them all, and
    return what each printed afterwards (stripped), in command order."""
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()  # "" if the process died before getting ready
            assert line.strip() == "ready", f"racer exited early ({p.wait(timeout)}): {line!r}"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=timeout)[0].strip() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * len(procs), outputs
    return outputs
