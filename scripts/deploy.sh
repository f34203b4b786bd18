#!/usr/bin/env bash
# Deploy (or upgrade) the chart: namespace, development Secrets with random values (created once,
# never printed, never in git), then `helm upgrade --install`. With SERVING=true each predictor
# is pinned to a registry version read from the release's MLflow (scripts/serving_versions.py):
# the champion's, or for CANARY=<model> that model's challenger at CANARY_PERCENT. Called by
# `make deploy`, `make canary` and their minikube twins with:
#   KUBECTL HELM KUBE_CONTEXT NAMESPACE RELEASE VALUES (a values-*.yaml) KFP_NAMESPACE
#   PIPELINE_DATA_SECRET PYTHON  [SERVING CANARY CANARY_PERCENT TRACKING_URI HELM_ARGS]
# (TRACKING_URI: an MLflow URL this machine reaches; default a port-forward to the release's.)
set -euo pipefail

: "${KUBECTL:?}" "${HELM:?}" "${KUBE_CONTEXT:?}" "${NAMESPACE:?}" "${RELEASE:?}" "${VALUES:?}"
: "${KFP_NAMESPACE:?}" "${PIPELINE_DATA_SECRET:?}" "${PYTHON:?}"
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
ensure_secret mlplatform-feedback token  # the payload sink's POST /v1/feedback bearer token

# The pipeline's data step runs in the KFP namespace and fetches its data version from the
# release's MinIO: the same key pair, and the endpoint, as a Secret there (refreshed each deploy).
pipeline_data_secret() {
  local get=(get secret mlplatform-s3 -n "$NAMESPACE" -o)
  local id secret endpoint="http://$RELEASE-minio.$NAMESPACE.svc.cluster.local:9000"
  id="$(kc "${get[@]}" 'jsonpath={.data.access-key-id}' | base64 -d)"
  secret="$(kc "${get[@]}" 'jsonpath={.data.secret-access-key}' | base64 -d)"
  kc create secret generic "$PIPELINE_DATA_SECRET" -n "$KFP_NAMESPACE" --dry-run=client -o yaml \
    --from-literal=access-key-id="$id" --from-literal=secret-access-key="$secret" \
    --from-literal=endpoint-url="$endpoint" | kc apply -f - >/dev/null
  echo "secret/$PIPELINE_DATA_SECRET in namespace $KFP_NAMESPACE (the pipeline's data step)"
}
if kc get namespace "$KFP_NAMESPACE" >/dev/null 2>&1; then
  pipeline_data_secret
else
  echo "namespace $KFP_NAMESPACE not found: no pipeline data Secret (install KFP, then deploy again)"
fi

# The version each predictor serves (none while SERVING=false: no InferenceService is rendered).
VERSION_ARGS=()
if [ "${SERVING:-true}" = "true" ]; then
  extra=()
  [ -z "${CANARY:-}" ] || extra+=(--canary "$CANARY" --percent "${CANARY_PERCENT:-10}")
  [ -z "${TRACKING_URI:-}" ] || extra+=(--tracking-uri "$TRACKING_URI")
  # shellcheck disable=SC2086  # HELM_ARGS: the user's --set flags decide the enabled models
  flags="$("$PYTHON" "$HERE/scripts/serving_versions.py" --values "$VALUES" --kubectl "$KUBECTL" \
    --context "$KUBE_CONTEXT" --namespace "$NAMESPACE" --release "$RELEASE" "${extra[@]}" \
    ${HELM_ARGS:-})"
  [ -z "$flags" ] || mapfile -t VERSION_ARGS <<<"$flags"
  echo "serving: ${VERSION_ARGS[*]}"
fi

# shellcheck disable=SC2086  # HELM_ARGS is a list of extra flags
"$HELM" --kube-context "$KUBE_CONTEXT" upgrade --install "$RELEASE" "$HERE/helm/mlplatform" \
  --namespace "$NAMESPACE" --values "$VALUES" --wait --timeout 15m "${VERSION_ARGS[@]}" \
  ${HELM_ARGS:-}
kc get inferenceservices -n "$NAMESPACE"
