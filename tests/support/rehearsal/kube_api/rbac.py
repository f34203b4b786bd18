"""Who is asking, what they ask, and whether the release's RBAC lets them (EMULATED).

Read at these versions, and where:

* **authentication** (k8s.io/apiserver ``authentication/request/bearertoken``): the scheme word
  is case-insensitive; a token nobody issued is 401 ``Unauthorized``; a request without one is
  ``system:anonymous`` (kube-apiserver ``--anonymous-auth`` defaults to true, kind keeps it),
  which RBAC then refuses with 403;
* **request attributes** (``endpoints/request/requestinfo.go``): GET on a name is ``get``, on
  the collection ``list`` (``watch`` with ``?watch=true``), POST ``create``, PUT ``update``,
  PATCH ``patch``, DELETE ``delete`` (``deletecollection`` without a name);
* **RBAC** (kubernetes ``plugin/pkg/auth/authorizer/rbac/rbac.go`` ``RuleAllows``,
  ``pkg/apis/rbac/v1/evaluation_helpers.go``, ``pkg/registry/rbac/validation/rule.go``
  ``appliesToUser``): ClusterRoleBindings, then the namespace's RoleBindings whose subjects name
  the user, its groups or its ServiceAccount; a rule allows when verb, API group, resource
  (``res/sub`` for a subresource) and, if it lists any, resourceNames all match (``*`` matches
  all); a binding to a missing role adds ``RBAC: role... not found`` to the refusal;
* **refusal text** (apiserver ``endpoints/handlers/responsewriters/errors.go``
  ``forbiddenMessage`` and apimachinery ``api/errors`` ``NewForbidden``), written as a
  ``metav1.Status``.

Not emulated: discovery and the bootstrap ClusterRoles (``system:discovery``...), JWT tokens
(a token here is an opaque string) and their expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

Obj = dict[str, Any]
VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch"}
VERBS["DELETE"] = "delete"
RBAC = ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


# -- users -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


def service_account_user(namespace: str, name: str) -> User:
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
    return User(f"system:serviceaccount:{namespace}:{name}", (*groups, "system:authenticated"))


def bearer_user(tokens: dict[str, User], header: str | None) -> User | None:
    """The user, :data:`ANONYMOUS` without a bearer token, None for a token not issued."""
    parts = (header or "").strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return ANONYMOUS
    return tokens.get(parts[1])


# -- requests --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Info:
    """What requestinfo.go makes of a request."""

    verb: str
    path: str
    resource_request: bool = False
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def request_info(method: str, target: str) -> Info:
    """``/api/v1/...`` and ``/apis/<group>/<version>/...`` with ``namespaces/<ns>/`` before the
    resource are resource requests; anything shorter or elsewhere is a non-resource path."""
    url = urlsplit(target)
    parts = [p for p in url.path.split("/") if p]
    if len(parts) < 3 or parts[0] not in ("api", "apis") or (parts[0] == "apis" and len(parts) < 4):
        return Info(method.lower(), url.path)
    group = parts[1] if parts[0] == "apis" else ""
    version, rest = parts[1 + bool(group)], parts[2 + bool(group) :]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        rest = rest[2:] if len(rest) > 2 else rest  # namespaces/<ns> is the Namespace itself
    resource, name, sub = [*rest, "", "", ""][:3]
    verb = VERBS.get(method, method.lower())
    query = parse_qs(url.query)
    if not name and verb == "get":
        verb = "watch" if query.get("watch", [""])[0] in ("true", "1") else "list"
    elif not name and verb == "delete":
        verb = "deletecollection"
    return Info(verb, url.path, True, group, version, namespace, resource, sub, name)


# -- RBAC ------------------------------------------------------------------------------------------
def rule_allows(info: Info, rule: Obj) -> bool:
    """rbac.go ``RuleAllows`` with the matchers of evaluation_helpers.go."""

    def has(key: str, value: str) -> bool:
        return "*" in rule.get(key, []) or value in rule.get(key, [])

    if not info.resource_request:
        urls = rule.get("nonResourceURLs", [])
        path_ok = any(
            u == info.path or (u.endswith("*") and info.path.startswith(u[:-1])) for u in urls
        )
        return has("verbs", info.verb) and path_ok
    combined = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    resources = rule.get("resources", [])
    resource_ok = has("resources", combined) or (
        bool(info.subresource) and f"*/{info.subresource}" in resources
    )
    names = rule.get("resourceNames") or []
    return (
        has("verbs", info.verb)
        and has("apiGroups", info.group)
        and resource_ok
        and (not names or info.name in names)
    )


def _applies(subject: Obj, user: User, binding_namespace: str) -> bool:
    """rule.go ``appliesToUser``: a ServiceAccount subject without a namespace means the
    binding's own."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


def authorize(rbac: dict[str, list[Obj]], user: User, info: Info) -> tuple[bool, str]:
    """(allowed, the refusal's ``RBAC: ...`` reason or "") from the release's RBAC objects
    (``rbac[kind]`` for each kind of :data:`RBAC`, namespaced ones with their namespace)."""
    errors: list[str] = []
    bindings = [(b, "") for b in rbac["ClusterRoleBinding"]]
    bindings += [
        (b, info.namespace)
        for b in rbac["RoleBinding"]
        if info.namespace and b["metadata"]["namespace"] == info.namespace
    ]
    for binding, ns in bindings:
        if not any(_applies(s, user, ns) for s in binding.get("subjects") or []):
            continue
        ref = binding["roleRef"]
        found = [
            r
            for r in rbac[ref["kind"]]
            if r["metadata"]["name"] == ref["name"]
            and (ref["kind"] == "ClusterRole" or r["metadata"]["namespace"] == ns)
        ]
        if not found:
            errors.append(
                f'{ref["kind"].lower()}.rbac.authorization.k8s.io "{ref["name"]}" not found'
            )
        elif any(rule_allows(info, rule) for rule in found[0].get("rules") or []):
            return True, ""
    if not errors:
        return False, ""
    return False, "RBAC: " + (errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]")


# -- error Status texts ----------------------------------------------------------------------------
def status(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    """A ``metav1.Status`` as the API server writes it for an error."""
    doc: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    doc.update(message=message, reason=reason, code=code)
    if details is not None:  # empty fields are omitted (omitempty)
        doc["details"] = {k: v for k, v in details.items() if v}
    return doc


def forbidden(user: User, info: Info, reason: str) -> Obj:
    """errors.go ``Forbidden``: ``forbiddenMessage`` (plus ``: <reason>``) in ``NewForbidden``."""
    if not info.resource_request:
        msg = f'User "{user.name}" cannot {info.verb} path "{info.path}"'
        return status(403, "Forbidden", f"forbidden: {msg}" + (f": {reason}" if reason else ""))
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    where = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
    msg = f'User "{user.name}" cannot {info.verb} resource "{resource}" in API group '
    msg += f'"{info.group}" {where}' + (f": {reason}" if reason else "")
    qualified = f"{info.resource}.{info.group}" if info.group else info.resource
    subject = f'{qualified} "{info.name}"' if info.name else qualified
    details = {"name": info.name, "group": info.group, "kind": info.resource}
    return status(403, "Forbidden", f"{subject} is forbidden: {msg}", details)
