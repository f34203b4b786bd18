"""EMULATED pod network for the rehearsal's processes (on ``PYTHONPATH`` inside each pod).

On the cluster every pod has an IP of its own, so two pods can both listen on
``0.0.0.0:8080``. Here all pods share this machine's network, so a socket bound to the
wildcard address is bound to the pod's own loopback address instead
(``MLPLATFORM_REHEARSAL_POD_IP``, one 127.x address per pod; Services resolve to them through
the pod's ``/etc/hosts``). Nothing else is changed; outside the rehearsal this file is never
on the path.
"""

import os
import socket

_POD_IP = os.environ.get("MLPLATFORM_REHEARSAL_POD_IP")
_WILDCARD = ("", "0.0.0.0")

if _POD_IP:
    _bind = socket.socket.bind

    def _pod_bind(self, address):  # type: ignore[no-untyped-def]
        if self.family == socket.AF_INET and isinstance(address, tuple) and address[0] in _WILDCARD:
            address = (_POD_IP, *address[1:])
        return _bind(self, address)

    socket.socket.bind = _pod_bind  # type: ignore[method-assign]
