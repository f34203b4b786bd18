#!/usr/bin/env bash
# Install the platform's cluster dependencies, in order, each pinned and each waited for:
#   cert-manager → Knative Serving + Kourier → KServe (Knative mode) → KFP standalone.
# Idempotent: re-running re-applies the same versions. Called by `make install-deps` and
# `make minikube-install-deps`, which pass the pinned versions (mk/cluster.mk) as variables:
#   KUBECTL HELM KUBE_CONTEXT CERT_MANAGER_VERSION KNATIVE_SERVING_VERSION
#   KNATIVE_KOURIER_VERSION KSERVE_VERSION KFP_VERSION
set -euo pipefail

: "${KUBECTL:?}" "${HELM:?}" "${KUBE_CONTEXT:?}"
: "${CERT_MANAGER_VERSION:?}" "${KNATIVE_SERVING_VERSION:?}" "${KNATIVE_KOURIER_VERSION:?}"
: "${KSERVE_VERSION:?}" "${KFP_VERSION:?}"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MANIFESTS="$HERE/manifests"
TIMEOUT="${TIMEOUT:-600s}"

kc() { "$KUBECTL" --context "$KUBE_CONTEXT" "$@"; }
hm() { "$HELM" --kube-context "$KUBE_CONTEXT" "$@"; }
step() { printf '\n==> %s\n' "$*"; }
# `kubectl apply` of a large upstream file; server-side apply avoids the 256 KiB annotation limit
# of client-side apply on big CRDs.
apply_url() { kc apply --server-side --force-conflicts -f "$1"; }

step "cert-manager ${CERT_MANAGER_VERSION}"
apply_url "https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
kc wait --for=condition=Available deployment --all -n cert-manager --timeout="$TIMEOUT"

step "Knative Serving ${KNATIVE_SERVING_VERSION}"
apply_url "https://github.com/knative/serving/releases/download/knative-${KNATIVE_SERVING_VERSION}/serving-crds.yaml"
kc wait --for=condition=Established crd/services.serving.knative.dev --timeout="$TIMEOUT"
apply_url "https://github.com/knative/serving/releases/download/knative-${KNATIVE_SERVING_VERSION}/serving-core.yaml"
kc wait --for=condition=Available deployment --all -n knative-serving --timeout="$TIMEOUT"

step "Kourier ${KNATIVE_KOURIER_VERSION} (Knative's ingress)"
apply_url "https://github.com/knative-extensions/net-kourier/releases/download/knative-${KNATIVE_KOURIER_VERSION}/kourier.yaml"
kc wait --for=condition=Available deployment --all -n kourier-system --timeout="$TIMEOUT"
kc patch configmap/config-network -n knative-serving --type merge \
  --patch-file "$MANIFESTS/knative/config-network.yaml"
kc patch configmap/config-domain -n knative-serving --type merge \
  --patch-file "$MANIFESTS/knative/config-domain.yaml"
kc patch configmap/config-features -n knative-serving --type merge \
  --patch-file "$MANIFESTS/knative/config-features.yaml"
# The node-loaded image's registry skips tag resolution (the file says why).
kc patch configmap/config-deployment -n knative-serving --type merge \
  --patch-file "$MANIFESTS/knative/config-deployment.yaml"
kc patch service/kourier -n kourier-system --patch-file "$MANIFESTS/knative/kourier-nodeport.yaml"

step "KServe ${KSERVE_VERSION} (Knative mode, Kourier: no Istio VirtualService)"
hm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd \
  --version "$KSERVE_VERSION" --namespace kserve --create-namespace --wait --timeout "$TIMEOUT"
hm upgrade --install kserve oci://ghcr.io/kserve/charts/kserve-resources \
  --version "$KSERVE_VERSION" --namespace kserve \
  --set kserve.controller.deploymentMode=Knative \
  --set kserve.controller.gateway.disableIstioVirtualHost=true \
  --wait --timeout "$TIMEOUT"

step "Kubeflow Pipelines ${KFP_VERSION} (standalone, platform-agnostic)"
kc apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=${KFP_VERSION}"
kc wait --for=condition=Established crd/applications.app.k8s.io --timeout="$TIMEOUT"
kc apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=${KFP_VERSION}"
kc wait --for=condition=Available deployment --all -n kubeflow --timeout=1200s

step "done"
printf 'cert-manager %s | Knative Serving %s | Kourier %s | KServe %s | KFP %s\n' \
  "$CERT_MANAGER_VERSION" "$KNATIVE_SERVING_VERSION" "$KNATIVE_KOURIER_VERSION" \
  "$KSERVE_VERSION" "$KFP_VERSION"
