#!/usr/bin/env bash
# Put the demo datasets into the cluster's DVC remote: the chart's MinIO, reached through a
# kubectl port-forward for the duration of the push (as scripts/kfp_pipeline.py does for KFP).
# The remote is the release's (MLPLATFORM__DATA__REMOTE in its ConfigMap <release>-pipeline).
# Prints one "<model> <md5>" line per dataset: a pipeline run trains on that version with
#   make pipeline-run MODEL=<model> DATA_VERSION=<md5>   (or models.<model>.dataVersion)
# Called by `make cluster-data` (mk/cluster.mk), which sets every variable below.
set -euo pipefail
: "${KUBECTL:?}" "${CONTEXT:?}" "${NAMESPACE:?}" "${RELEASE:?}" "${MODELS:?}"
PORT="${MINIO_LOCAL_PORT:-19000}"
SECRET="${S3_SECRET:-mlplatform-s3}"
BIN="${BIN:-.venv/bin}"
kc() { "$KUBECTL" --context "$CONTEXT" -n "$NAMESPACE" "$@"; }
key() { kc get secret "$SECRET" -o "jsonpath={.data.$1}" | base64 -d; }

DATA_REMOTE="$(kc get configmap "$RELEASE-pipeline" -o 'jsonpath={.data.MLPLATFORM__DATA__REMOTE}')"
[ -n "$DATA_REMOTE" ] || { echo "configmap/$RELEASE-pipeline names no data remote: make deploy first" >&2; exit 2; }
AWS_ACCESS_KEY_ID="$(key access-key-id)"
AWS_SECRET_ACCESS_KEY="$(key secret-access-key)"
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
kc port-forward "svc/$RELEASE-minio" "$PORT:9000" >/dev/null &
forward=$!
trap 'kill "$forward" 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.5
done

for model in $MODELS; do
  config="configs/$model.yaml"
  [ -f "data/$model.parquet" ] || "$BIN/mlplatform" data --config "$config"
  echo "$model $("$BIN/mlplatform" data push --config "$config" --remote "$DATA_REMOTE")"
done
