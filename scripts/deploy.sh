#!/usr/bin/env bash
# Deploy (or upgrade) the chart: namespace, development Secrets with random values (created once,
# never printed, never in git), then `helm upgrade --install`. Called by `make deploy` and
# `make minikube-deploy` with:
#   KUBECTL HELM KUBE_CONTEXT NAMESPACE RELEASE VALUES (a values-*.yaml)  [HELM_ARGS]
set -euo pipefail

: "${KUBECTL:?}" "${HELM:?}" "${KUBE_CONTEXT:?}" "${NAMESPACE:?}" "${RELEASE:?}" "${VALUES:?}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kc() { "$KUBECTL" --context "$KUBE_CONTEXT" "$@"; }

random() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# A Secret with random values for these keys, unless one with that name already exists.
ensure_secret() {
  local name="$1"; shift
  if kc get secret "$name" -n "$NAMESPACE" >/dev/null 2>&1; then
    echo "secret/$name exists (kept)"
    return
  fi
  local args=()
  for key in "$@"; do
    case "$key" in
      *=*) args+=("--from-literal=$key") ;;
      *) args+=("--from-literal=$key=$(random)") ;;
    esac
  done
  kc create secret generic "$name" -n "$NAMESPACE" "${args[@]}" >/dev/null
  kc label secret "$name" -n "$NAMESPACE" app.kubernetes.io/part-of=mlplatform >/dev/null
  echo "secret/$name created (random values)"
}

kc apply -f "$HERE/manifests/namespaces.yaml"
ensure_secret mlplatform-postgresql username=mlflow password
ensure_secret mlplatform-stores username=mlplatform password
ensure_secret mlplatform-s3 access-key-id secret-access-key
ensure_secret mlplatform-redis password

# shellcheck disable=SC2086  # HELM_ARGS is a list of extra flags
"$HELM" --kube-context "$KUBE_CONTEXT" upgrade --install "$RELEASE" "$HERE/helm/mlplatform" \
  --namespace "$NAMESPACE" --values "$VALUES" --wait --timeout 15m ${HELM_ARGS:-}
kc get inferenceservices -n "$NAMESPACE"
