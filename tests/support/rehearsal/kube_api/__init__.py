"""EMULATED Kubernetes API server: the part of it the chart's rollout controller talks to.

The rollout controller (``mlplatform rollout --backend kserve``) calls
``kubernetes.config.load_config()`` and then ``get_namespaced_custom_object`` /
``patch_namespaced_custom_object`` on its model's InferenceService. This stand-in answers those
calls over HTTPS, holding the InferenceServices the chart renders, and decides every request
from the release's rendered RBAC only. Each module cites the upstream sources it follows:

* :mod:`.rbac`: requests (``requestinfo.go``), users and bearer tokens, RBAC (``rbac.go``
  ``RuleAllows``), and the error Status texts (``forbiddenMessage``);
* :mod:`.objects`: :class:`KubeApi`, the stored InferenceServices, merge-patch and the write
  rules of a custom resource with a status subresource;
* :mod:`.server`: TLS, the HTTPS endpoint (:func:`api_server`, :class:`ApiServer`) and what a
  pod gets (the ``kubernetes`` Service env, the ServiceAccount token volume).

Not emulated (each answered with an ``EMULATED`` message, never silently): json-patch and
apply-patch (415; the pinned client sends neither), create/update/delete/watch even when RBAC
allows them (405), other resources and subresources (404). Nor are discovery and the bootstrap
ClusterRoles (``system:discovery``...), admission webhooks, CRD schema validation, JWT tokens
(a token here is an opaque string) and their expiry.
"""

from tests.support.rehearsal.kube_api.objects import KubeApi, OnWrite
from tests.support.rehearsal.kube_api.rbac import request_info
from tests.support.rehearsal.kube_api.server import ApiServer, api_server

__all__ = ["ApiServer", "KubeApi", "OnWrite", "api_server", "request_info"]
