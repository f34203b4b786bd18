"""The stand-in over HTTPS, and what a pod gets to reach it (EMULATED).

:func:`api_server` runs a :class:`~.objects.KubeApi` behind TLS on a node address of its own,
and, with a proxy, as the ``kubernetes`` Service of namespace ``default``. Read at these
versions, and where:

* **client** (``kubernetes`` 30.1.0, the lock's): in-cluster config reads
  ``KUBERNETES_SERVICE_HOST``/``_PORT`` and the token and CA files under :data:`TOKEN_DIR`,
  talks ``https`` and verifies the CA (``config/incluster_config.py``); it sends the token as
  ``authorization: bearer <token>``;
* **the endpoint**: kube-apiserver on a kind control-plane node listens on 6443; the
  ``kubernetes`` Service's one port is named ``https``, 443 → 6443
  (``pkg/controlplane/reconcilers``); its certificate names that Service and its address, as
  kubeadm's does.

A pod gets what the kubelet and the ServiceAccount admission plugin give it:
:meth:`ApiServer.pod_env` and :meth:`ApiServer.credentials`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.rehearsal.kube_api.objects import KubeApi
from tests.support.rehearsal.pods import ClusterDns, KubeProxy, ServicePort, Volume

Obj = dict[str, Any]
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: Where kube-apiserver listens on a kind control-plane node; the ``kubernetes`` Service's one
#: port is named ``https``, 443 → 6443 (pkg/controlplane/reconcilers).
API_PORT, SERVICE_PORT = 6443, 443


# -- TLS -------------------------------------------------------------------------------------------
def write_pki(dest: Path, ips: list[str], names: list[str]) -> tuple[Path, Path, Path]:
    """A throwaway CA and a serving certificate for ``ips`` and ``names`` (as kubeadm's for the
    API server: the ``kubernetes`` Service's names and address, the node's address).
    Returns the paths of (ca.crt, server.crt, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rehearsal-kubernetes-ca")])

    def issue(subject: str, public: Any, ca: bool, *extensions: x509.ExtensionType) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        b = x509.CertificateBuilder(ca_name, name, public, x509.random_serial_number())
        b = b.not_valid_before(now - datetime.timedelta(minutes=5))
        b = b.not_valid_after(now + datetime.timedelta(days=1))
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        issuer = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
        for extension in (issuer, *extensions):
            b = b.add_extension(extension, critical=False)
        return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    server_auth = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    dest.mkdir(parents=True, exist_ok=True)
    paths = (dest / "ca.crt", dest / "server.crt", dest / "server.key")
    paths[0].write_bytes(issue("rehearsal-kubernetes-ca", ca_key.public_key(), True))
    paths[1].write_bytes(
        issue(
            "kube-apiserver",
            key.public_key(),
            False,
            x509.SubjectAlternativeName(sans),
            server_auth,
        )
    )
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    paths[2].write_bytes(key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    return paths


# -- the HTTPS endpoint and what a pod gets --------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: KubeApi

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        code, doc = self.api.handle(self.command, self.path, dict(self.headers.items()), body)
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gives up on the TLS handshake (tests do) is not our error


@dataclass
class ApiServer:
    """A running stand-in: :class:`KubeApi` over HTTPS at ``ip:port``, and, when started with
    :func:`api_server` and a proxy, the ``kubernetes`` Service of namespace ``default``."""

    api: KubeApi
    ip: str
    port: int
    ca: Path
    service_ip: str | None = None
    _http: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"https://{self.ip}:{self.port}"

    def pod_env(self) -> dict[str, str]:
        """What the kubelet puts in every container for the ``kubernetes`` Service of
        ``default``, even with ``enableServiceLinks: false`` (pkg/kubelet/envvars/envvars.go
        ``FromServices``; kubelet_pods.go ``getServiceEnvVarMap``)."""
        host = self.service_ip or self.ip
        port = SERVICE_PORT if self.service_ip else self.port
        tcp = f"KUBERNETES_PORT_{port}_TCP"
        return {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            tcp: f"tcp://{host}:{port}",
            f"{tcp}_PROTO": "tcp",
            f"{tcp}_PORT": str(port),
            f"{tcp}_ADDR": host,
        }

    def credentials(self, template: Obj, dest: Path) -> Volume | None:
        """The token volume the ServiceAccount admission plugin adds to a pod of ``template``
        (plugin/pkg/admission/serviceaccount/admission.go): only when ``shouldAutomount`` (the
        pod's ``automountServiceAccountToken`` wins, then the ServiceAccount's, else true);
        ``token``, ``ca.crt`` and ``namespace`` at :data:`TOKEN_DIR`, read-only. A
        ServiceAccount the release does not render (other than ``default``) is a KeyError, as
        admission refuses such a pod."""
        spec = template["spec"]
        account = spec.get("serviceAccountName") or "default"
        if account not in {*self.api.service_accounts, "default"}:
            raise KeyError(f"no ServiceAccount {account} in the release")
        sa = self.api.service_accounts.get(account, {})
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = sa.get("automountServiceAccountToken")
        if automount is False:
            return None
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "token").write_text(self.api.issue_token(account))
        (dest / "ca.crt").write_bytes(self.ca.read_bytes())
        (dest / "namespace").write_text(self.api.namespace)
        return Volume(TOKEN_DIR, dest, read_only=True)

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()


@contextmanager
def api_server(
    api: KubeApi, dns: ClusterDns, tmp: Path, proxy: KubeProxy | None = None
) -> Iterator[ApiServer]:
    """The stand-in on a node address of its own, port 6443; with ``proxy``, also the
    ``kubernetes`` Service (``default`` namespace, port 443) in front of it, as pods reach it."""
    ip = dns.pod_ip()
    service_ip = dns.add_service("default", "kubernetes") if proxy is not None else None
    names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    names.append("kubernetes.default.svc.cluster.local")
    ca, cert, key = write_pki(tmp, [ip, *([service_ip] if service_ip else [])], names)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler = type("Handler", (_Handler,), {"api": api})
    http = _Server((ip, API_PORT), handler)
    # The handshake then happens in the request's thread, not in the accepting loop.
    http.socket = context.wrap_socket(http.socket, server_side=True, do_handshake_on_connect=False)
    server = ApiServer(api, ip, API_PORT, ca, service_ip, http)
    threading.Thread(target=http.serve_forever, args=(0.1,), daemon=True).start()
    if proxy is not None and service_ip is not None:
        proxy.add(ServicePort(service_ip, SERVICE_PORT, API_PORT, [ip]))
    try:
        yield server
    finally:
        server.close()
