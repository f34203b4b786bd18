"""The stored InferenceServices and the answers to requests about them (EMULATED).

:class:`KubeApi` holds the release's InferenceServices, RBAC objects and ServiceAccounts and
answers one request at a time (:meth:`KubeApi.handle`, transport-free: :mod:`.server` puts it
behind HTTPS). Read at these versions, and where:

* **client** (``kubernetes`` 30.1.0, the lock's): ``patch_namespaced_custom_object`` always
  sends ``Content-Type: application/merge-patch+json``, even for a list body (its
  ``select_header_content_type(['application/merge-patch+json'])``; ``rest.py`` only rewrites
  ``json-patch+json``);
* **patches**: the 415 text (apiserver ``endpoints/handlers/negotiation/errors.go``) and the
  patch types a custom resource accepts (apiextensions-apiserver ``customresource_handler.go``:
  json-patch, merge-patch, apply-patch+yaml); a merge patch is RFC 7386, applied as apiserver
  ``endpoints/handlers/patch.go`` applies it;
* **writes** (apiextensions-apiserver ``pkg/registry/customresource/strategy.go``
  ``PrepareForUpdate``): the KServe v0.20.0 CRD has the status subresource
  (``../shared/crds/kserve-v0.20.0``), so a write to the main resource keeps the stored
  status; any change outside ``metadata`` bumps ``metadata.generation``; a write that changes
  nothing keeps the resourceVersion (the etcd3 store skips identical writes); a patch naming
  another resourceVersion is a 409 Conflict.

Not emulated (each answered with an ``EMULATED`` message, never silently): json-patch and
apply-patch (415; the pinned client sends neither), create/update/delete/watch even when RBAC
allows them (405), other resources and subresources (404). Nor are admission webhooks and CRD
schema validation.
"""

from __future__ import annotations

import copy
import datetime
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import Any

from tests.support.rehearsal.kube_api.rbac import (
    RBAC,
    Info,
    User,
    authorize,
    bearer_user,
    forbidden,
    request_info,
    service_account_user,
    status,
)

Obj = dict[str, Any]
OnWrite = Callable[[Obj], Obj]
ISVC = GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
QUALIFIED = f"{PLURAL}.{GROUP}"
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)


# -- patches -------------------------------------------------------------------------------------
class PatchError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2: objects merge key by key, ``null`` removes a key, anything else
    replaces the value."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def patch_type(content_type: str) -> str:
    """The patch type (``; charset=...`` dropped), or 415 as handlers/patch.go answers."""
    kind = content_type.split(";")[0]
    if kind not in PATCH_TYPES:
        accepted = ", ".join(PATCH_TYPES)
        message = "the body of the request was in an unknown format - accepted media types "
        raise PatchError(415, "UnsupportedMediaType", f"{message}include: {accepted}")
    if kind != "application/merge-patch+json":  # the only type the pinned client sends
        raise PatchError(415, "UnsupportedMediaType", f"EMULATED: {kind} is not emulated")
    return kind


def apply_patch(doc: Obj, content_type: str, body: bytes) -> Obj:
    """The merge patch applied as handlers/patch.go applies it: a body that is not JSON is 400
    (json-patch's ``Invalid JSON Patch``); one that is not an object replaces the whole
    object, which then fails to decode: 422 Invalid."""
    patch_type(content_type)
    try:
        patch = json.loads(body)
    except ValueError:
        raise PatchError(400, "BadRequest", "Invalid JSON Patch") from None
    if not isinstance(patch, dict):
        raise PatchError(422, "Invalid", f"patch: Invalid value: {body.decode()!r}: not an object")
    result: Obj = merge_patch(doc, patch)
    return result


# -- the API: objects, authentication, authorization ---------------------------------------------
class KubeApi:
    """The release's InferenceServices, RBAC objects and ServiceAccounts, and the answers to
    requests about them (:meth:`handle`, transport-free)."""

    def __init__(self, docs: list[Obj], namespace: str, on_write: OnWrite | None = None) -> None:
        self.namespace, self.on_write = namespace, on_write
        self.rbac = {kind: [self._placed(d) for d in docs if d["kind"] == kind] for kind in RBAC}
        self.service_accounts = {
            d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"
        }
        self.tokens: dict[str, User] = {}
        self.reconcile_errors: list[Exception] = []
        self.objects: dict[tuple[str, str], Obj] = {}
        self._rv = 0
        self._lock = threading.Lock()
        for doc in docs:
            if doc["kind"] == "InferenceService":
                self._create(self._placed(doc))

    def _placed(self, doc: Obj) -> Obj:
        doc = copy.deepcopy(doc)
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            doc["metadata"].setdefault("namespace", self.namespace)
        return doc

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _create(self, obj: Obj) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta = obj["metadata"]
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now, generation=1)
        meta["resourceVersion"] = self._next_rv()
        self.objects[(meta["namespace"], meta["name"])] = obj
        self._reconcile(obj)

    def _reconcile(self, obj: Obj) -> None:
        """The controller's turn (``on_write``), after each create and each write that changed
        something: what it returns is written as through ``/status`` (only the status is kept;
        a new resourceVersion if that changed it). On the cluster the controller runs later,
        from its watch; here it runs before the write is answered, so a rehearsal is
        deterministic (the answer still holds the status as it was)."""
        if self.on_write is None:
            return
        try:
            status_now = self.on_write(copy.deepcopy(obj)).get("status")
        except Exception as exc:  # a failing controller does not fail the write that woke it
            self.reconcile_errors.append(exc)
            return
        if status_now != obj.get("status"):
            obj["status"] = status_now
            obj["metadata"]["resourceVersion"] = self._next_rv()

    def get(self, name: str, namespace: str | None = None) -> Obj:
        """The stored InferenceService (a copy), as a GET would return it."""
        with self._lock:
            return copy.deepcopy(self.objects[(namespace or self.namespace, name)])

    def admin_apply(self, doc: Obj) -> Obj:
        """``helm upgrade`` of a rendered InferenceService, as the release's admin (not the
        rollout Role: the RBAC check is skipped, as for a cluster-admin kubeconfig): the spec,
        labels and annotations become the new manifest's. Helm 3's three-way merge (old
        manifest, new manifest, live object) ends the same unless a field is set on the live
        object only, which Helm keeps and this replaces: e.g. a ``canaryTrafficPercent`` the
        rollout controller set while neither manifest names it (``make deploy`` twice during a
        rollout). The stored object as the write leaves it (a copy)."""
        placed = self._placed(doc)
        with self._lock:
            old = self.objects[(placed["metadata"]["namespace"], placed["metadata"]["name"])]
            new = copy.deepcopy(old)
            new["spec"] = placed["spec"]
            for key in ("labels", "annotations"):
                new["metadata"][key] = placed["metadata"].get(key) or {}
            self._update(old, new)
            return copy.deepcopy(
                self.objects[(old["metadata"]["namespace"], old["metadata"]["name"])]
            )

    # -- authentication
    def issue_token(self, service_account: str, namespace: str | None = None) -> str:
        """A token for the ServiceAccount (what the kubelet's projected volume would hold)."""
        ns = namespace or self.namespace
        if ns == self.namespace and service_account not in {*self.service_accounts, "default"}:
            raise KeyError(f"no ServiceAccount {service_account} in the release")
        token = secrets.token_urlsafe(32)
        self.tokens[token] = service_account_user(ns, service_account)
        return token

    def authenticate(self, header: str | None) -> User | None:
        """The user, :data:`.rbac.ANONYMOUS` without a bearer token, None for a token not
        issued."""
        return bearer_user(self.tokens, header)

    # -- authorization
    def authorize(self, user: User, info: Info) -> tuple[bool, str]:
        return authorize(self.rbac, user, info)

    # -- requests
    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Obj]:
        """(HTTP status, JSON body) for one request: authenticate, authorize, then serve."""
        lower = {k.lower(): v for k, v in headers.items()}
        user = self.authenticate(lower.get("authorization"))
        if user is None:
            return 401, status(401, "Unauthorized", "Unauthorized")
        info = request_info(method, target)
        allowed, reason = self.authorize(user, info)
        if not allowed:
            return 403, forbidden(user, info, reason)
        served = (info.group, info.version, info.resource, info.subresource) == (*ISVC, "")
        if not info.resource_request or not served or not info.namespace:
            message = "the server could not find the requested resource (EMULATED: not served)"
            return 404, status(404, "NotFound", message)
        with self._lock:
            return self._serve(info, lower.get("content-type", ""), body)

    def _serve(self, info: Info, content_type: str, body: bytes) -> tuple[int, Obj]:
        if info.verb == "list":
            items = [o for (ns, _), o in sorted(self.objects.items()) if ns == info.namespace]
            doc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceServiceList"}
            return 200, {**doc, "metadata": {"resourceVersion": str(self._rv)}, "items": items}
        if info.verb not in ("get", "patch"):
            return 405, status(405, "MethodNotAllowed", f"EMULATED: {info.verb} is not emulated")
        try:
            if info.verb == "patch":
                patch_type(content_type)
            old = self.objects.get((info.namespace, info.name))
            if old is None:
                message = f'{QUALIFIED} "{info.name}" not found'
                details = {"name": info.name, "group": GROUP, "kind": PLURAL}
                return 404, status(404, "NotFound", message, details)
            if info.verb == "get":
                return 200, old
            return 200, self._update(old, apply_patch(copy.deepcopy(old), content_type, body))
        except PatchError as exc:
            return exc.code, status(exc.code, exc.reason, exc.message)

    def _update(self, old: Obj, new: Obj) -> Obj:
        """strategy.go PrepareForUpdate, then the store: status kept, generation bumped on a
        change outside metadata, a new resourceVersion unless nothing changed."""
        meta, old_meta = new.get("metadata") or {}, old["metadata"]
        if meta.get("resourceVersion", old_meta["resourceVersion"]) != old_meta["resourceVersion"]:
            message = (
                f'Operation cannot be fulfilled on {QUALIFIED} "{old_meta["name"]}": the object '
                "has been modified; please apply your changes to the latest version and try again"
            )
            raise PatchError(409, "Conflict", message)
        if (meta.get("name"), meta.get("namespace")) != (old_meta["name"], old_meta["namespace"]):
            raise PatchError(400, "BadRequest", "the name or namespace of the object changed")
        for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            meta[key] = old_meta[key]  # owned by the server
        new["metadata"] = meta
        new.pop("status", None)
        if "status" in old:
            new["status"] = old["status"]
        if new == old:
            return old
        if {**new, "metadata": None} != {**old, "metadata": None}:
            meta["generation"] = old_meta["generation"] + 1
        meta["resourceVersion"] = self._next_rv()
        self.objects[(meta["namespace"], meta["name"])] = new
        response = copy.deepcopy(new)
        self._reconcile(new)
        return response
