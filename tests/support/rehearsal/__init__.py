"""The cluster rehearsal: the rendered chart run as real processes on this machine.

Layout: :mod:`.image` (the image's working directory, from images/Dockerfile and
.dockerignore), :mod:`.pods` (EMULATED pods and Services: a mount namespace per pod, cluster
DNS through the pod's /etc/hosts, an address per pod, kube-proxy), ``enter.py`` (a pod's
filesystem, laid out inside its namespace) and ``shim/`` (the pod address for wildcard binds);
:mod:`.story` runs the README's kind story with them (``make rehearse``).
"""
