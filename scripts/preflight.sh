#!/usr/bin/env bash
# Pre-flight check of the cluster targets (mk/cluster.mk): are the tools a target runs installed,
# recent enough, and (with --context) does its kube context exist? Prints one line per problem,
# naming what is missing, the version needed and where to get it, and exits 2; silent when all
# is well.
#
#   scripts/preflight.sh [--context NAME --up TARGET] TOOL...     TOOL: docker kind kubectl helm minikube
#
# The commands come from the environment as mk/cluster.mk names them (DOCKER, KIND, KUBECTL,
# HELM, MINIKUBE; default: the name on PATH). On Linux x86-64, `make setup` extracts the pinned
# helm 3.17.2 and kubectl 1.32.3 into .tools/bin and the targets use those.
set -euo pipefail

# tool → "minimum maximum-minor why" (maximum "-": none). The kind node runs Kubernetes 1.33
# (KIND_NODE_IMAGE, kind v0.31.0's image); kubectl supports one minor version of skew.
need() {
  case "$1" in
    docker) echo "20.10 - Docker Engine 20.10 or newer, running, with 6 CPUs and 12 GiB" ;;
    kind) echo "0.31.0 - kind v0.31.0 or newer (its node image is pinned in mk/cluster.mk)" ;;
    kubectl) echo "1.32 1.34 kubectl 1.32 to 1.34 (the cluster runs Kubernetes 1.33)" ;;
    helm) echo "3.8 - helm 3.8 or newer" ;;
    minikube) echo "1.36.0 - minikube v1.36.0 or newer (Kubernetes 1.33)" ;;
    *) return 1 ;;
  esac
}

where() {
  case "$1" in
    docker) echo "https://docs.docker.com/engine/install/ (or Docker Desktop)" ;;
    kind) echo "https://kind.sigs.k8s.io/docs/user/quick-start/#installation" ;;
    minikube) echo "https://minikube.sigs.k8s.io/docs/start/" ;;
    kubectl | helm) echo "on Linux x86-64 \`make setup\` extracts the pinned helm 3.17.2 and" \
      "kubectl 1.32.3 into .tools/bin; elsewhere install $1 on your PATH" \
      "or name it with $(tr a-z A-Z <<<"$1")=/path/to/$1" ;;
  esac
}

command_of() {
  case "$1" in
    docker) echo "${DOCKER:-docker}" ;;
    kind) echo "${KIND:-kind}" ;;
    kubectl) echo "${KUBECTL:-kubectl}" ;;
    helm) echo "${HELM:-helm}" ;;
    minikube) echo "${MINIKUBE:-minikube}" ;;
  esac
}

version_output() {
  local tool=$1 cmd=$2
  case "$tool" in
    docker) "$cmd" version --format '{{.Server.Version}}' ;;
    kind) "$cmd" version ;;
    kubectl) "$cmd" version --client ;;
    helm) "$cmd" version --short ;;
    minikube) "$cmd" version --short ;;
  esac
}

# version_ge A B: A >= B, both dotted numbers (missing parts are 0).
version_ge() {
  local -a a b
  IFS=. read -r -a a <<<"$1"
  IFS=. read -r -a b <<<"$2"
  local i
  for i in 0 1 2; do
    if ((10#${a[i]:-0} != 10#${b[i]:-0})); then
      ((10#${a[i]:-0} > 10#${b[i]:-0}))
      return
    fi
  done
}

problems=0
fail() {
  echo "preflight: $*" >&2
  problems=$((problems + 1))
}

check_docker_resources() {
  local cmd=$1 cpus mem
  read -r cpus mem < <("$cmd" info --format '{{.NCPU}} {{.MemTotal}}' 2>/dev/null) || return 0
  if [[ "$cpus" =~ ^[0-9]+$ && "$mem" =~ ^[0-9]+$ ]] &&
    ((cpus < 6 || mem < 11 * 1024 * 1024 * 1024)); then
    echo "preflight: warning: Docker has $cpus CPUs and $((mem / 1024 / 1024 / 1024)) GiB;" \
      "the cluster needs 6 CPUs and 12 GiB (Docker Desktop: Settings → Resources)" >&2
  fi
}

check_tool() {
  local tool=$1 cmd min max why out version missing
  cmd=$(command_of "$tool")
  read -r min max why <<<"$(need "$tool")"
  if ! command -v "$cmd" >/dev/null 2>&1; then
    if [[ "$cmd" == */* ]]; then missing="not found at $cmd"; else missing="not found on PATH"; fi
    fail "$tool: $missing; need $why: $(where "$tool")"
    return
  fi
  if ! out=$(version_output "$tool" "$cmd" 2>&1); then
    if [[ "$tool" == docker ]]; then
      fail "docker: the Docker daemon is not reachable (\`$cmd version\` failed): start Docker"
    else
      fail "$tool: \`$cmd\` did not report its version; need $why: $(where "$tool")"
    fi
    return
  fi
  version=$(grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' <<<"$out" | head -n 1 || true)
  if [[ -z "$version" ]]; then
    fail "$tool: cannot read a version from \`$cmd\` ($out); need $why"
  elif ! version_ge "$version" "$min"; then
    fail "$tool: $version is too old; need $why: $(where "$tool")"
  elif [[ "$max" != - ]] && version_ge "$version" "${max%.*}.$((${max#*.} + 1))"; then
    fail "$tool: $version is too new; need $why: $(where "$tool")"
  elif [[ "$tool" == docker ]]; then
    check_docker_resources "$cmd"
  fi
}

context="" up=""
while (($#)); do
  case "$1" in
    --context) context=$2 && shift 2 ;;
    --up) up=$2 && shift 2 ;;
    *) break ;;
  esac
done
usage="usage: $0 [--context NAME --up TARGET] docker|kind|kubectl|helm|minikube..."
(($#)) || { echo "$usage" >&2 && exit 64; }
for tool in "$@"; do
  need "$tool" >/dev/null || { echo "preflight: unknown tool $tool; $usage" >&2 && exit 64; }
done

for tool in "$@"; do
  check_tool "$tool"
done
if [[ -n "$context" ]] && ((problems == 0)) &&
  ! "$(command_of kubectl)" config get-contexts -o name 2>/dev/null | grep -qx "$context"; then
  fail "kube context $context does not exist: create the cluster first${up:+ (make $up)}"
fi
if ((problems)); then
  echo "preflight: $problems problem(s); nothing was changed" >&2
  exit 2
fi
