# tocsin: everything a fresh machine needs, fetched into .cache/ (ignored by git).
# Needs: Python 3.11, Java 17 + Maven (Kafka, Flink job server), Go (Prism runner).

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
CACHE       := .cache
M2          := $(abspath $(CACHE))/m2
BEAM_VERSION  := 2.77.0
KAFKA_VERSION := 4.1.1
KAFKA_LIBS  := $(CACHE)/kafka-$(KAFKA_VERSION)/libs
PRISM       := $(CACHE)/prism-$(BEAM_VERSION)/prism
FLINK_JAR   := $(CACHE)/flink/beam-flink-job-server.jar
FLINK_LIB   := $(CACHE)/flink/lib
FLINK_CLUSTER_LIB := $(CACHE)/flink-cluster/lib
PROM_DIR    := $(CACHE)/prometheus
PROMETHEUS  := $(PROM_DIR)/usr/bin/prometheus
APICURIO_VERSION := 2.6.13.Final
REGISTRY_DIR := $(CACHE)/schema-registry/app
REGISTRY_JAR := $(REGISTRY_DIR)/apicurio-registry-app-$(APICURIO_VERSION)-runner.jar
AM_VERSION  := 0.35.0
AM_DIR      := $(CACHE)/alertmanager-$(AM_VERSION)
AMTOOL      := $(AM_DIR)/amtool
ALERTMANAGER := $(AM_DIR)/alertmanager
GOPATH_CACHE := $(abspath $(CACHE))/go
# Stamped as a release build is, so `--version` says which and amtool's version check is quiet.
AM_LDFLAGS  := -X github.com/prometheus/common/version.Version=$(AM_VERSION) \
    -X github.com/prometheus/common/version.Revision=v$(AM_VERSION) \
    -X github.com/prometheus/common/version.Branch=HEAD

# The test broker gets its own port and a fresh data dir, so it never touches a dev broker.
TEST_KAFKA  := KAFKA_PORT=29092 KAFKA_CONTROLLER_PORT=29093 KAFKA_DATA=$(CACHE)/kafka-test-data

export TOCSIN_CACHE := $(CACHE)
export TOCSIN_PROMETHEUS := $(abspath $(PROMETHEUS))
export TOCSIN_AMTOOL := $(abspath $(AMTOOL))
export TOCSIN_ALERTMANAGER := $(abspath $(ALERTMANAGER))
export TOCSIN_PRISM_LOCATION := $(abspath $(PRISM))
export TOCSIN_FLINK_JOB_SERVER_JAR := $(abspath $(FLINK_JAR))
export FLINK_CLUSTER_LIB := $(abspath $(FLINK_CLUSTER_LIB))

.PHONY: flink-cluster-fetch flink-cluster-up flink-cluster-down test-flink-cluster
.PHONY: setup kafka-fetch prism flink prometheus alertmanager schema-registry chromium kafka-up kafka-down topics test test-faults test-unit lint bench demo clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

kafka-fetch: $(KAFKA_LIBS)/.fetched

$(KAFKA_LIBS)/.fetched: deploy/kafka/pom.xml
	mvn --batch-mode --quiet -Dmaven.repo.local=$(M2) -f deploy/kafka/pom.xml \
	    -Dkafka.version=$(KAFKA_VERSION) dependency:copy-dependencies \
	    -DincludeScope=runtime -DoutputDirectory=$(abspath $(KAFKA_LIBS))
	touch $@

# Beam's Prism runner, built from its Go module at the apache-beam version pinned in pyproject.toml.
prism: $(PRISM)

$(PRISM):
	mkdir -p $(dir $@)
	GOPATH=$(abspath $(CACHE))/go GOFLAGS=-modcacherw GOBIN=$(abspath $(dir $@)) \
	    go install github.com/apache/beam/sdks/v2/go/cmd/prism@v$(BEAM_VERSION)

# Beam's Flink job server (embedded Flink 1.19) for --runner=FlinkRunner. No job-server jar is published
# for Beam 2.77, so a manifest-only jar runs the Beam 2.62 Flink runner from Maven (see deploy/flink/pom.xml).
flink: $(FLINK_JAR)

$(FLINK_JAR): deploy/flink/pom.xml deploy/flink/build_job_server.sh
	rm -rf $(FLINK_LIB)
	mvn --batch-mode --quiet -Dmaven.repo.local=$(M2) -f deploy/flink/pom.xml \
	    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(abspath $(FLINK_LIB))
	deploy/flink/build_job_server.sh $@ $(FLINK_LIB)

# A Flink 1.19 session cluster from Maven Central (deploy/flink-cluster/pom.xml: Flink's modules, as no
# flink-dist jar is published): a JobManager and a TaskManager (2 slots), each its own JVM, and Beam's job
# server pointed at it, on free loopback ports, in .cache/flink-cluster/run (tocsin/runners/flink_cluster.py).
# `up` prints the pipeline options that run a job there (`tocsin flink cluster status` again).
flink-cluster-fetch: $(FLINK_CLUSTER_LIB)/.fetched

$(FLINK_CLUSTER_LIB)/.fetched: deploy/flink-cluster/pom.xml
	rm -rf $(FLINK_CLUSTER_LIB)
	mvn --batch-mode --quiet -Dmaven.repo.local=$(M2) -f deploy/flink-cluster/pom.xml \
	    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(abspath $(FLINK_CLUSTER_LIB))
	touch $@

flink-cluster-up: setup flink flink-cluster-fetch
	$(BIN)/tocsin flink cluster up

flink-cluster-down:
	$(BIN)/tocsin flink cluster down

# Prometheus (and promtool) from Debian's package, unpacked into .cache: no system install, no root needed.
prometheus: $(PROMETHEUS)

$(PROMETHEUS):
	rm -rf $(PROM_DIR) && mkdir -p $(PROM_DIR)
	cd $(PROM_DIR) && apt-get download prometheus && dpkg -x prometheus_*.deb . && rm prometheus_*.deb
	test -x $@

# Alertmanager's amtool and alertmanager from the Go module proxy at a pinned version: amtool reads tocsin's
# Alertmanager API in the tests, and the alertmanager channel's test feeds a real Alertmanager.
alertmanager: $(AMTOOL) $(ALERTMANAGER)

$(AMTOOL):
	mkdir -p $(dir $@)
	GOPATH=$(GOPATH_CACHE) GOFLAGS=-modcacherw GOBIN=$(abspath $(dir $@)) \
	    go install -ldflags "$(AM_LDFLAGS)" github.com/prometheus/alertmanager/cmd/amtool@v$(AM_VERSION)

# cmd/alertmanager embeds its web UI from ui/app/dist, which a release build makes with npm and the module on
# the proxy does not hold, so `go install` of it fails ("pattern app/dist: no matching files found"). It is
# built from the module's own source with a one-page placeholder for the UI: the API, all tocsin uses, is
# the release's.
$(ALERTMANAGER):
	mkdir -p $(dir $@)
	GOPATH=$(GOPATH_CACHE) GOFLAGS=-modcacherw go mod download github.com/prometheus/alertmanager@v$(AM_VERSION)
	rm -rf $(AM_DIR)/src
	cp -r $(GOPATH_CACHE)/pkg/mod/github.com/prometheus/alertmanager@v$(AM_VERSION) $(AM_DIR)/src
	chmod -R u+w $(AM_DIR)/src
	for ui in elm mantine; do mkdir -p $(AM_DIR)/src/ui/app/dist/$$ui && \
	    echo '<!doctype html><title>Alertmanager</title><p>Built without its web UI: use its API or amtool.' \
	    > $(AM_DIR)/src/ui/app/dist/$$ui/index.html; done
	cd $(AM_DIR)/src && GOPATH=$(GOPATH_CACHE) GOFLAGS=-modcacherw \
	    go build -buildvcs=false -ldflags "$(AM_LDFLAGS)" -o $(abspath $@) ./cmd/alertmanager
	rm -rf $(AM_DIR)/src

# Apicurio Registry from Maven Central, a real schema registry with the Confluent API (/apis/ccompat/v7),
# for the registry tests (tests/conftest.py's schema_registry starts it); see deploy/schema-registry/pom.xml.
schema-registry: $(REGISTRY_JAR)

$(REGISTRY_JAR): deploy/schema-registry/pom.xml
	# The build folder too: the unpack's markers live there, and with them left it would skip the unpack.
	rm -rf $(REGISTRY_DIR) $(CACHE)/schema-registry/build
	mvn --batch-mode --quiet -Dmaven.repo.local=$(M2) -f deploy/schema-registry/pom.xml \
	    -Dapicurio.version=$(APICURIO_VERSION) dependency:unpack-dependencies \
	    -DoutputDirectory=$(abspath $(REGISTRY_DIR))
	test -f $@

# Headless Chromium from Debian's package, for the back-test report's browser test (playwright drives this
# binary; it never downloads a browser of its own). A system package: installing it needs root, as on CI.
CHROMIUM    := /usr/bin/chromium

chromium:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	    echo "chromium: $(CHROMIUM) is missing and installing Debian's package needs root:" >&2; \
	    echo "    sudo apt-get install -y --no-install-recommends chromium" >&2; exit 1; \
	fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
	    || { echo "chromium: apt-get could not install Debian's chromium package" >&2; exit 1; }; \
	test -x $(CHROMIUM) || { echo "chromium: installed, but $(CHROMIUM) is still missing" >&2; exit 1; }

kafka-up: setup kafka-fetch
	$(BIN)/tocsin kafka up

kafka-down:
	$(BIN)/tocsin kafka down

# Three KRaft brokers, each a combined broker and controller and a voter of one quorum, each its own JVM
# (the jars kafka-fetch put in .cache): brokers on 127.0.0.1:19092-19094, controllers on 19192-19194, data
# in .cache/kafka-cluster-data (KAFKA_CLUSTER_PORTS, KAFKA_CLUSTER_CONTROLLER_PORTS, KAFKA_CLUSTER_DATA).
# Its topics: tocsin topics create -b 127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094 --deployment cluster
.PHONY: kafka-cluster-up kafka-cluster-down test-kafka-cluster
kafka-cluster-up: setup kafka-fetch
	$(BIN)/tocsin kafka cluster up

kafka-cluster-down:
	$(BIN)/tocsin kafka cluster down

# The broker-kill test alone (also in test-faults): it starts a cluster of its own on free ports.
test-kafka-cluster: setup kafka-fetch prism
	$(BIN)/pytest tests/faults/test_cluster_broker_kill.py -m "faults or not faults" -s

topics: kafka-up
	$(BIN)/tocsin topics create

# Everything on a fresh machine: environment, broker, runner, then unit and integration tests.
test: setup kafka-fetch prism flink prometheus alertmanager schema-registry chromium
	rm -rf $(CACHE)/kafka-test-data
	$(TEST_KAFKA) $(BIN)/tocsin kafka up
	$(TEST_KAFKA) TOCSIN_TEST_BOOTSTRAP=127.0.0.1:29092 TOCSIN_REQUIRE_FLINK=1 TOCSIN_REQUIRE_PROMETHEUS=1 \
	    TOCSIN_REQUIRE_CHROMIUM=1 TOCSIN_REQUIRE_ALERTMANAGER=1 TOCSIN_REQUIRE_SCHEMA_REGISTRY=1 \
	    $(BIN)/pytest -m "not faults and not flink_cluster"; rc=$$?; \
	    $(TEST_KAFKA) $(BIN)/tocsin kafka down; exit $$rc

# The jobs on a Flink session cluster against Prism (tests/integration/test_flink_cluster.py): minutes of
# JVMs, so not in `make test`; its own broker, as `make test`.
test-flink-cluster: setup kafka-fetch prism flink flink-cluster-fetch
	rm -rf $(CACHE)/kafka-test-data
	$(TEST_KAFKA) $(BIN)/tocsin kafka up
	$(TEST_KAFKA) TOCSIN_TEST_BOOTSTRAP=127.0.0.1:29092 TOCSIN_REQUIRE_FLINK=1 TOCSIN_REQUIRE_FLINK_CLUSTER=1 \
	    $(BIN)/pytest -m flink_cluster -s tests/integration/test_flink_cluster.py; rc=$$?; \
	    $(TEST_KAFKA) $(BIN)/tocsin kafka down; exit $$rc

test-unit: setup
	$(BIN)/pytest tests/unit

# The fault suite: kills of the jobs at random points against an uninterrupted run, and the fuzzing at
# ten times the examples `make test` tries (its fast part). Its own broker, as `make test`.
test-faults: setup kafka-fetch prism
	rm -rf $(CACHE)/kafka-test-data
	$(TEST_KAFKA) $(BIN)/tocsin kafka up
	$(TEST_KAFKA) TOCSIN_TEST_BOOTSTRAP=127.0.0.1:29092 TOCSIN_FUZZ_SCALE=10 \
	    $(BIN)/pytest tests/faults -m "faults or not faults" -s; rc=$$?; \
	    $(TEST_KAFKA) $(BIN)/tocsin kafka down; exit $$rc

# Style, then the architecture contracts (pyproject.toml [tool.importlinter]; also a test in `make test`).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/lint_architecture.py

bench: setup kafka-fetch prism
	$(BIN)/python bench/kafka_pipeline_bench.py

# tocsin's window-count job beside Quix Streams, Bytewax, Pathway and raw consume ceilings, on one broker;
# each peer in a venv of its own under bench/peers/.venvs (made on first use). See bench/peers/README.md.
.PHONY: bench-peers
bench-peers: setup kafka-fetch prism
	$(BIN)/python bench/peers/run.py

demo: setup kafka-fetch prism
	$(BIN)/tocsin demo

clean:
	rm -rf $(CACHE)/kafka-data $(CACHE)/kafka-test-data $(CACHE)/kafka-cluster-data
