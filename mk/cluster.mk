# Cluster targets: the image, a kind or minikube cluster, its dependencies, the Helm chart and
# the KFP pipeline. Included by the Makefile (which defines BIN := .venv/bin); the README's "Deploy on kind" section
# walks through them. Every upstream version is pinned here and nowhere else.

# ---- pinned upstream versions -------------------------------------------------------------
# Kubernetes node: kind v0.31.0's image for 1.33 (kubectl 1.32.3 from .tools is within the
# supported skew; the chart is validated offline against the 1.32 and 1.33 schemas).
KIND_NODE_IMAGE ?= kindest/node:v1.33.7@sha256:d26ef333bdb2cbe9862a0f7c3803ecc7b4303d8cea8e814b481b09949d353040
K8S_VERSION ?= v1.33.7
# KServe v0.20.0 in Knative mode, with the dependency versions KServe's kserve-deps.env pins
# around v0.20 (cert-manager v1.17.0, Knative Serving 1.21.1), and Kourier of the same Knative
# minor as Knative's ingress (KServe: disableIstioVirtualHost).
CERT_MANAGER_VERSION ?= v1.17.0
KNATIVE_SERVING_VERSION ?= v1.21.1
KNATIVE_KOURIER_VERSION ?= v1.21.0
KSERVE_VERSION ?= v0.20.0
# Kubeflow Pipelines standalone (backend 2.17, the line of the kfp 2.17 SDK in requirements.lock).
KFP_VERSION ?= 2.17.0

# ---- names ----------------------------------------------------------------------------------
CLUSTER_NAME ?= mlplatform
NAMESPACE ?= mlplatform
RELEASE ?= mlplatform
MODEL ?= house-price
KIND_CONTEXT := kind-$(CLUSTER_NAME)
MINIKUBE_CONTEXT := $(CLUSTER_NAME)
MINIKUBE_FLAGS ?= --kubernetes-version=$(K8S_VERSION) --cni=calico --cpus=6 --memory=12g \
	--disk-size=40g --driver=docker
# serving.enabled: `make deploy SERVING=false` deploys everything but the model servers
# (first deploy, before a champion is registered); with serving, each predictor is pinned to its
# champion's version (`make canary MODEL=... PERCENT=10`: the model's challenger, as a canary
# revision). SET="key=value ..." adds --set flags, e.g. SET="models.house-price.dataVersion=<md5>".
SERVING ?= true
SET ?=
PERCENT ?= 10
# `make cluster-data` pushes the demo datasets to the release's DVC remote (the chart's
# data.remotePrefix in its MinIO bucket, read from the ConfigMap <release>-pipeline).
DATA_MODELS ?= house-price credit-risk diabetes

# The image name is defined once, in src/mlplatform/image.py (read without a venv).
IMAGE_REPOSITORY := $(shell sed -n 's/^IMAGE_REPOSITORY = "\(.*\)"/\1/p' src/mlplatform/image.py)
IMAGE_TAG := $(shell sed -n 's/^IMAGE_TAG = "\(.*\)"/\1/p' src/mlplatform/image.py)
IMAGE := $(IMAGE_REPOSITORY):$(IMAGE_TAG)

# ---- tools ----------------------------------------------------------------------------------
# helm 3.17.2 and kubectl 1.32.3 come out of a pinned PyPI wheel (linux/amd64); elsewhere the
# helm and kubectl on PATH are used for the cluster targets.
TOOLS_BIN := .tools/bin
ifeq ($(shell uname -s)-$(shell uname -m),Linux-x86_64)
HELM ?= $(CURDIR)/$(TOOLS_BIN)/helm
KUBECTL ?= $(CURDIR)/$(TOOLS_BIN)/kubectl
else
HELM ?= helm
KUBECTL ?= kubectl
endif
DOCKER ?= docker
KIND ?= kind
MINIKUBE ?= minikube
# The KFP-namespace Secret of the pipeline's data step, named once in the pipeline's code.
PIPELINE_DATA_SECRET := $(shell sed -n 's/^DATA_SECRET = "\(.*\)"/\1/p' \
	src/mlplatform/orchestration/training_pipeline.py)
KFP_NAMESPACE ?= kubeflow
# scripts/preflight.sh: each cluster target first checks the tools it runs (installed, version)
# and, once the cluster should exist, its kube context; it says what is missing and exits 2.
PREFLIGHT = @DOCKER="$(DOCKER)" KIND="$(KIND)" KUBECTL="$(KUBECTL)" HELM="$(HELM)" \
	MINIKUBE="$(MINIKUBE)" bash scripts/preflight.sh
ON_KIND = --context $(KIND_CONTEXT) --up kind-up
ON_MINIKUBE = --context $(MINIKUBE_CONTEXT) --up minikube-up
# Ports on this machine, clear of `mlplatform serve`'s (8080-8084, admin 8090): the kind node maps
# Kourier (the ingress) to 127.0.0.1:8180 (manifests/kind/cluster.yaml); `make kfp-ui` and
# `make mlflow-ui` forward the KFP UI and the release's MLflow (scripts/kfp_pipeline.py prints
# run links on KFP_UI_PORT).
KFP_UI_PORT ?= 8280
MLFLOW_PORT ?= 5050
DEPLOY_ENV = KUBECTL="$(KUBECTL)" HELM="$(HELM)" NAMESPACE="$(NAMESPACE)" RELEASE="$(RELEASE)" \
	KFP_NAMESPACE="$(KFP_NAMESPACE)" PIPELINE_DATA_SECRET="$(PIPELINE_DATA_SECRET)" \
	PYTHON="$(BIN)/python" SERVING="$(SERVING)" \
	HELM_ARGS="--set serving.enabled=$(SERVING) $(addprefix --set ,$(SET))"
DEPS_ENV = KUBECTL="$(KUBECTL)" HELM="$(HELM)" CERT_MANAGER_VERSION="$(CERT_MANAGER_VERSION)" \
	KNATIVE_SERVING_VERSION="$(KNATIVE_SERVING_VERSION)" \
	KNATIVE_KOURIER_VERSION="$(KNATIVE_KOURIER_VERSION)" KSERVE_VERSION="$(KSERVE_VERSION)" \
	KFP_VERSION="$(KFP_VERSION)"
KFP_SCRIPT = $(BIN)/python scripts/kfp_pipeline.py --kubectl "$(KUBECTL)"
# `make materialize`: a Job from the model's materialize CronJob (rendered for the models with
# a dataVersion), followed until it completes. $(1) is the kube context.
MATERIALIZE_CRONJOB = $(RELEASE)-materialize-$(MODEL)
define MATERIALIZE
	@$(KUBECTL) --context $(1) -n $(NAMESPACE) get cronjob/$(MATERIALIZE_CRONJOB) >/dev/null \
		|| { echo "no cronjob/$(MATERIALIZE_CRONJOB): record the model's data version first," \
			"make deploy SET=models.$(MODEL).dataVersion=<md5> (make cluster-data prints it)" >&2; \
			exit 2; }
	job=$(MATERIALIZE_CRONJOB)-$$(date +%s) && \
	$(KUBECTL) --context $(1) -n $(NAMESPACE) create job $$job \
		--from=cronjob/$(MATERIALIZE_CRONJOB) && \
	$(KUBECTL) --context $(1) -n $(NAMESPACE) logs -f job/$$job --pod-running-timeout=5m && \
	$(KUBECTL) --context $(1) -n $(NAMESPACE) wait job/$$job --for=condition=complete \
		--timeout=120s
endef

.PHONY: tools image image-name kind-up kind-load install-deps deploy canary pipeline-upload \
	pipeline-run cluster-data materialize kfp-ui mlflow-ui kind-down minikube-up minikube-load minikube-install-deps \
	minikube-deploy minikube-canary minikube-pipeline-upload minikube-pipeline-run \
	minikube-materialize minikube-down rehearse rehearse-test

tools: $(TOOLS_BIN)/helm ## Extract the pinned helm and kubectl into .tools/bin

# $(STAMP) (the Makefile's venv stamp) when defined: the script runs with the venv's Python.
$(TOOLS_BIN)/helm: requirements.lock scripts/extract_k8s_tools.py $(STAMP)
	$(BIN)/python scripts/extract_k8s_tools.py --dest $(TOOLS_BIN)
	touch $@

image: ## Build the one image (images/Dockerfile), named in src/mlplatform/image.py
	$(PREFLIGHT) docker
	$(DOCKER) build -f images/Dockerfile -t $(IMAGE) .

image-name: ## Print the image name and tag (from src/mlplatform/image.py)
	@echo $(IMAGE)

# ---- kind -----------------------------------------------------------------------------------
kind-up: ## Create the kind cluster (manifests/kind/cluster.yaml) and the namespaces
	$(PREFLIGHT) docker kind kubectl
	@$(KIND) get clusters 2>/dev/null | grep -qx '$(CLUSTER_NAME)' \
		&& echo "kind cluster $(CLUSTER_NAME) exists" \
		|| $(KIND) create cluster --name $(CLUSTER_NAME) --image $(KIND_NODE_IMAGE) \
			--config manifests/kind/cluster.yaml --wait 120s
	$(KUBECTL) --context $(KIND_CONTEXT) apply -f manifests/namespaces.yaml

kind-load: ## Load the image into the kind node (after make image)
	$(PREFLIGHT) docker kind
	$(KIND) load docker-image $(IMAGE) --name $(CLUSTER_NAME)

install-deps: tools ## Install cert-manager, Knative+Kourier, KServe and KFP (pinned) on kind
	$(PREFLIGHT) $(ON_KIND) kubectl helm
	$(DEPS_ENV) KUBE_CONTEXT=$(KIND_CONTEXT) bash scripts/install_deps.sh

deploy: tools ## helm upgrade --install the chart on kind (values-kind.yaml; SERVING=, SET=)
	$(PREFLIGHT) $(ON_KIND) kubectl helm
	$(DEPLOY_ENV) KUBE_CONTEXT=$(KIND_CONTEXT) VALUES=helm/mlplatform/values-kind.yaml \
		bash scripts/deploy.sh

canary: tools ## Deploy MODEL's challenger as a canary predictor revision on kind (PERCENT=10)
	$(PREFLIGHT) $(ON_KIND) kubectl helm
	$(DEPLOY_ENV) KUBE_CONTEXT=$(KIND_CONTEXT) VALUES=helm/mlplatform/values-kind.yaml \
		CANARY=$(MODEL) CANARY_PERCENT=$(PERCENT) bash scripts/deploy.sh

pipeline-upload: tools ## Upload pipelines/training_pipeline.yaml to KFP on kind
	$(PREFLIGHT) $(ON_KIND) kubectl
	$(KFP_SCRIPT) upload --context $(KIND_CONTEXT)

pipeline-run: tools ## Run the training pipeline on kind (MODEL=house-price|credit-risk, DATA_VERSION=<md5>)
	$(PREFLIGHT) $(ON_KIND) kubectl
	$(KFP_SCRIPT) run --context $(KIND_CONTEXT) --config configs/$(MODEL).yaml \
		--release $(RELEASE) --namespace $(NAMESPACE) $(if $(DATA_VERSION),--data-version $(DATA_VERSION))

cluster-data: tools ## Push the demo datasets to the release's MinIO as DVC data versions; prints md5s
	$(PREFLIGHT) $(ON_KIND) kubectl
	KUBECTL="$(KUBECTL)" CONTEXT="$(KIND_CONTEXT)" NAMESPACE="$(NAMESPACE)" RELEASE="$(RELEASE)" \
		MODELS="$(DATA_MODELS)" BIN="$(BIN)" bash scripts/cluster_data.sh

materialize: tools ## Fill Redis with a model's online features now (MODEL=; needs its dataVersion)
	$(PREFLIGHT) $(ON_KIND) kubectl
	$(call MATERIALIZE,$(KIND_CONTEXT))

kfp-ui: tools ## Forward the KFP UI to http://localhost:8280 (KFP_UI_PORT=; Ctrl-C stops it)
	$(PREFLIGHT) $(ON_KIND) kubectl
	@$(KUBECTL) --context $(KIND_CONTEXT) port-forward -n $(KFP_NAMESPACE) svc/ml-pipeline-ui \
		$(KFP_UI_PORT):80

mlflow-ui: tools ## Forward the release's MLflow to http://localhost:5050 (MLFLOW_PORT=; Ctrl-C stops it)
	$(PREFLIGHT) $(ON_KIND) kubectl
	@echo "for the CLI: export MLPLATFORM__REGISTRY__TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT)"
	@$(KUBECTL) --context $(KIND_CONTEXT) port-forward -n $(NAMESPACE) svc/$(RELEASE)-mlflow \
		$(MLFLOW_PORT):5000

kind-down: ## Delete the kind cluster and everything in it
	$(PREFLIGHT) kind
	$(KIND) delete cluster --name $(CLUSTER_NAME)

# ---- the rehearsal: the kind story above as processes on this machine (no Docker, no cluster) --
# tests/support/rehearsal/story.py: deploy, data, pipeline runs through a KFP stand-in, serving on
# an emulated KServe, canary and rollout, drift alert and retrain; one progress line per step.
# Needs this machine's PostgreSQL (MLPLATFORM_TEST_POSTGRES_URL) and redis-server.
REHEARSE_MODELS ?= house-price credit-risk
rehearse: setup ## Run the README's kind story as processes here, with progress (REHEARSE_MODELS=)
	$(BIN)/python -m tests.support.rehearsal.story $(addprefix --model ,$(REHEARSE_MODELS))

rehearse-test: setup ## The bounded story (house-price) as pytest steps: pytest -m story
	$(BIN)/python -m pytest -q -m story tests/integration/test_rehearsal_story.py

# ---- minikube -------------------------------------------------------------------------------
minikube-up: ## Start minikube (calico CNI, K8S_VERSION) and create the namespaces
	$(PREFLIGHT) docker minikube kubectl
	$(MINIKUBE) start -p $(CLUSTER_NAME) $(MINIKUBE_FLAGS)
	$(KUBECTL) --context $(MINIKUBE_CONTEXT) apply -f manifests/namespaces.yaml

minikube-load: ## Load the image into minikube (after make image)
	$(PREFLIGHT) minikube
	$(MINIKUBE) -p $(CLUSTER_NAME) image load $(IMAGE)

minikube-install-deps: tools ## Install the pinned dependencies on minikube
	$(PREFLIGHT) $(ON_MINIKUBE) kubectl helm
	$(DEPS_ENV) KUBE_CONTEXT=$(MINIKUBE_CONTEXT) bash scripts/install_deps.sh

minikube-deploy: tools ## helm upgrade --install the chart on minikube (values-minikube.yaml)
	$(PREFLIGHT) $(ON_MINIKUBE) kubectl helm
	$(DEPLOY_ENV) KUBE_CONTEXT=$(MINIKUBE_CONTEXT) VALUES=helm/mlplatform/values-minikube.yaml \
		bash scripts/deploy.sh

minikube-canary: tools ## Deploy MODEL's challenger as a canary revision on minikube (PERCENT=10)
	$(PREFLIGHT) $(ON_MINIKUBE) kubectl helm
	$(DEPLOY_ENV) KUBE_CONTEXT=$(MINIKUBE_CONTEXT) VALUES=helm/mlplatform/values-minikube.yaml \
		CANARY=$(MODEL) CANARY_PERCENT=$(PERCENT) bash scripts/deploy.sh

minikube-pipeline-upload: tools ## Upload the training pipeline to KFP on minikube
	$(PREFLIGHT) $(ON_MINIKUBE) kubectl
	$(KFP_SCRIPT) upload --context $(MINIKUBE_CONTEXT)

minikube-pipeline-run: tools ## Run the training pipeline on minikube (MODEL=...)
	$(PREFLIGHT) $(ON_MINIKUBE) kubectl
	$(KFP_SCRIPT) run --context $(MINIKUBE_CONTEXT) --config configs/$(MODEL).yaml \
		--release $(RELEASE) --namespace $(NAMESPACE) $(if $(DATA_VERSION),--data-version $(DATA_VERSION))

minikube-materialize: tools ## Fill Redis with a model's online features on minikube (MODEL=...)
	$(PREFLIGHT) $(ON_MINIKUBE) kubectl
	$(call MATERIALIZE,$(MINIKUBE_CONTEXT))

minikube-down: ## Delete the minikube profile and everything in it
	$(PREFLIGHT) minikube
	$(MINIKUBE) delete -p $(CLUSTER_NAME)
