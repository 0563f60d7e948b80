# Modelship's front door. `make demo` and `make test` are the two commands; the rest are parts.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BOOTSTRAP_PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
TOOLS_BIN := $(shell hack/build-tools.sh --print)
# Every target below sees the pinned tools and the project's commands first on PATH.
export PATH := $(TOOLS_BIN):$(VENV)/bin:$(PATH)
export KUBECONFIG := $(shell hack/cluster.sh env | sed -n "s/^export KUBECONFIG='\(.*\)'/\1/p")

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# -- setup ---------------------------------------------------------------------------------------
$(VENV)/.installed: requirements-dev.txt operator/pyproject.toml serving_image/pyproject.toml
	$(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e ./operator[test] -e ./serving_image[test]
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## create .venv with the operator, the model server and the test tools

.PHONY: tools
tools: ## build the control plane, kubelet, kube-proxy, CoreDNS, kubectl, kwok, helm, Prometheus (cached)
	@hack/build-tools.sh >/dev/null

.PHONY: images
images: venv ## build the base, pause, serving and operator images with buildah (cached by content)
	hack/images.sh

.PHONY: argocd-tools
argocd-tools: ## build Argo CD (argocd, one binary for every component) and argocd-lua (cached)
	@hack/build-argocd.sh >/dev/null

.PHONY: env
env: ## print shell exports for the local cluster: eval "$$(make -s env)"
	@hack/cluster.sh env
	@hack/prometheus.sh env

# -- the local cluster ---------------------------------------------------------------------------
.PHONY: cluster
cluster: venv tools images ## start the local cluster with its real node and Prometheus (or reuse them)
	hack/cluster.sh up
	hack/prometheus.sh up

.PHONY: cluster-down
cluster-down: ## stop Argo CD and the local cluster, delete their state, undo the real node's host changes
	hack/argocd.sh down
	hack/prometheus.sh down-all
	hack/cluster.sh down
	MODELSHIP_CLUSTER_NAME=modelship-faults hack/cluster.sh down

.PHONY: argocd
argocd: cluster argocd-tools ## start Argo CD (controller, repo server, API server, redis) on the local cluster
	hack/argocd.sh up

.PHONY: argocd-down
argocd-down: ## stop Argo CD and delete its namespace, CRDs and state
	hack/argocd.sh down

.PHONY: crd
crd: venv ## regenerate crds/ from the pydantic models
	$(PY) -m modelship.crd > crds/modeldeployments.modelship.dev.yaml
	cp crds/modeldeployments.modelship.dev.yaml charts/modelship/crds/

.PHONY: install-crd
install-crd: cluster ## install the ModelDeployment CRD into the local cluster
	kubectl apply --server-side --force-conflicts -f crds/
	kubectl wait --for=condition=Established crd/modeldeployments.modelship.dev --timeout=60s

# -- checks --------------------------------------------------------------------------------------
.PHONY: lint
lint: venv ## ruff, mypy, and the operator's import layers (import-linter)
	$(PY) -m ruff check operator serving_image tests hack bench/serving bench/operator argocd
	$(PY) -m ruff format --check operator/src serving_image/src tests hack bench/serving bench/operator argocd
	$(PY) -m mypy operator/src/modelship
	$(PY) -m mypy serving_image/src
	$(PY) -m mypy --explicit-package-bases tests
	$(VENV)/bin/lint-imports

.PHONY: test-unit
test-unit: venv ## pure unit tests (no cluster)
	$(PY) -m pytest tests/unit -q

.PHONY: test-serving
test-serving: venv ## the model server against real clients (and a real S3 server, built by hack/s3.sh)
	hack/s3.sh >/dev/null
	$(PY) -m pytest tests/serving -q

.PHONY: test-integration
test-integration: cluster argocd-tools ## everything that needs the local cluster (operator, chart, plugin, Argo CD)
	$(PY) -m pytest tests -q -n 2 --dist loadfile --ignore=tests/unit --ignore=tests/serving --ignore=tests/images

.PHONY: test-images
test-images: images ## the built images run in a throwaway containerd (no Kubernetes)
	$(PY) -m pytest tests/images -q

.PHONY: test-argocd
test-argocd: argocd ## Argo CD syncing from git, and our Lua in Argo CD's own engine
	$(PY) -m pytest tests/argocd_engine -q -n 2 --dist loadfile

.PHONY: test
test: lint test-unit test-serving test-images test-integration ## every test

# -- demo and benchmarks -------------------------------------------------------------------------
.PHONY: demo
demo: cluster ## the local cluster, the operator, an example model rolled to a new version
	hack/demo.sh

.PHONY: bench-serving
bench-serving: venv ## the model server against MLServer and KServe, same machine, same load generator
	bash bench/serving/run.sh

.PHONY: bench-operator
bench-operator: cluster ## the operator against Argo Rollouts: N objects (BENCH_N=1000) on kwok nodes, times, CPU, RSS, requests
	bash bench/operator/run.sh

.PHONY: soak
soak: venv tools ## SOAK_OBJECTS=50 ModelDeployments through random edits, actions and faults for SOAK_SECONDS=600 (SOAK_SEED replays)
	$(PY) -m tests.soak.soak
