"""Inside a fresh mount namespace (``unshare --mount``): lay out one pod's filesystem, then
exec its container's command. Run by :func:`tests.support.rehearsal.pods.start` as
``unshare --mount --propagation private python enter.py <spec.json>``.

The spec names bind mounts (``[container path, path here, read-only]``), the pod's
``/etc/hosts`` and ``/etc/resolv.conf``, the working directory, the environment and argv.
After the mounts the root filesystem is remounted read-only, as the chart's
``readOnlyRootFilesystem: true`` makes it: only the mounted volumes are writable.
"""

import json
import os
import subprocess
import sys


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    for target, source, read_only in spec["mounts"]:
        mount("--bind", source, target)
        if read_only:
            mount("-o", "remount,bind,ro", target)
    mount("-o", "remount,bind,ro", "/")
    os.chdir(spec["workdir"])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    main()
