# Entry points for developers and CI. `make help` lists them.
SHELL := bash
.DEFAULT_GOAL := help

GO ?= go
TOPOLOGY ?= ha
BUILD_DIR := build/linux-amd64
BINARIES := timestamp-api galera-health autoscaler
SWAG_VERSION := v1.16.6

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the Linux amd64 binaries that the Ansible roles deploy
	@mkdir -p $(BUILD_DIR)
	@for cmd in $(BINARIES); do \
		if [[ -d api/cmd/$$cmd ]]; then \
			CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -o $(BUILD_DIR)/$$cmd ./api/cmd/$$cmd || exit 1; \
			echo "built $(BUILD_DIR)/$$cmd"; \
		fi; \
	done

.PHONY: dev
dev: ## Start the API on one local MariaDB (quick development mode)
	@scripts/dev.sh start

.PHONY: dev-stop
dev-stop: ## Stop the development API and its MariaDB
	@scripts/dev.sh stop

.PHONY: dev-clean
dev-clean: ## Stop the development mode and delete its data (.devdb/)
	@scripts/dev.sh clean

.PHONY: test
test: ## Run every test: unit, integration on a real MariaDB, lint, and the end-to-end suite on test hosts
	@scripts/test.sh all

.PHONY: test-go
test-go: ## Run the Go unit and integration tests on the development MariaDB
	@scripts/test.sh go

.PHONY: swagger
swagger: ## Regenerate the OpenAPI spec in api/docs from the handlers' annotations
	@$(GO) run github.com/swaggo/swag/cmd/swag@$(SWAG_VERSION) init --quiet \
		--dir api/httpapi,api --generalInfo server.go --parseInternal \
		--output api/docs --outputTypes go,json,yaml

.PHONY: up
up: build ## Boot the local test hosts of TOPOLOGY (ha, poc or multi-dc) and provision them with ansible/site.yml
	@TOPOLOGY=$(TOPOLOGY) scripts/testbed/up.sh

.PHONY: down
down: ## Stop the local test hosts and remove their bridge and mounts
	@scripts/testbed/down.sh

.PHONY: status
status: ## Show the test hosts, Galera states, HAProxy's view and the VIP holder
	@scripts/testbed/status.sh

.PHONY: e2e
e2e: ## Run the end-to-end suite on the test hosts that `make up` booted
	@scripts/e2e.sh

.PHONY: monitoring
monitoring: ## Run the monitoring suite (every target up, an alert fires and resolves) on the test hosts
	@scripts/monitoring.sh

.PHONY: faults
faults: ## Run the fault suite (every single failure, under load) on the test hosts
	@scripts/faults.sh

.PHONY: multi-dc
multi-dc: ## Run the multi-datacenter suite (WAN latency, site loss, partitions) on the multi-dc test hosts
	@scripts/multi-dc.sh

.PHONY: elastic
elastic: ## Run the elasticity suite (autoscaler ramp, spike, flapping, HAProxy reload, killed controller, split VIP) on the test hosts
	@scripts/elastic.sh

.PHONY: docs
docs: ## Render docs/design.pdf (DOCS_ALLOW_PLACEHOLDERS=1: a preview in build/docs/)
	@DOCS_ALLOW_PLACEHOLDERS=$(DOCS_ALLOW_PLACEHOLDERS) scripts/docs.sh build

.PHONY: bench
bench: ## Benchmark the HA path on the test hosts; writes docs/benchmarks.md
	@scripts/bench.sh
