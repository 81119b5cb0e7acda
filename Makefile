# Two commands do all set-up on a fresh machine (Debian 12, Python 3.11): `make demo` and `make test`.
# Both are idempotent: system packages, the venv and the pinned jars are only (re)fetched when missing or stale.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SUPERSET_VENV := .venv-superset
AIRFLOW_VENV := .venv-airflow
export LAKEHOUSE_JARS ?= $(CURDIR)/.jars
JARS_STAMP := $(LAKEHOUSE_JARS)/.fetched
MAVEN_POMS := infra/maven/pom.xml $(wildcard infra/maven/*/pom.xml)
PY := $(VENV)/bin/python
# test processes (pytest-xdist; a file runs whole in one process, so module fixtures are built once)
TEST_WORKERS ?= 2
export LAKEHOUSE_HOME ?= $(CURDIR)/.lakehouse
export PYSPARK_PYTHON := $(CURDIR)/$(VENV)/bin/python
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(VENV)/bin/python
export SPARK_LOCAL_IP := 127.0.0.1

.PHONY: demo test lint system venv jars clean-state help

help:
	@echo "make demo   - install what is needed, start local services, run every job, leave the always-on pipeline"
	@echo "              running, print a summary and how to watch it (lakehouse pipeline status)"
	@echo "make test   - install what is needed and run the test suite (starts and stops its own services)"
	@echo "make lint   - ruff"

# JDK 17 (Spark, the Kafka broker), Maven (the pinned jars), PostgreSQL, Chromium. Only installs what is missing.
system:
	@if ! command -v javac >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then \
	  echo "installing openjdk-17-jdk-headless"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless) \
	  || { echo "error: could not install a JDK 17 (apt-get as root)"; exit 1; }; fi
	@if ! command -v mvn >/dev/null 2>&1; then \
	  echo "installing maven (fetches the pinned jars once)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven) \
	  || { echo "error: could not install maven (apt-get as root)"; exit 1; }; fi
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver (the BI dashboard's browser test)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	  || { echo "error: could not install chromium (apt-get as root)"; exit 1; }; fi
	@if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then \
	  echo "installing postgresql-15 (CDC source database)"; \
	  mkdir -p /etc/postgresql-common/createcluster.d && \
	  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/lakehouse.conf && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15) \
	  || { echo "error: could not install postgresql-15 (apt-get as root)"; exit 1; }; fi

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
	@touch $@

# Apache Superset (the BI tool on the SQL endpoint) in its own venv; see infra/superset/requirements.txt.
$(SUPERSET_VENV)/.installed: infra/superset/requirements.txt
	@test -x $(SUPERSET_VENV)/bin/python || $(PYTHON) -m venv $(SUPERSET_VENV)
	$(SUPERSET_VENV)/bin/python -m pip install -q --upgrade pip
	$(SUPERSET_VENV)/bin/python -m pip install -q -r infra/superset/requirements.txt
	@touch $@

# Apache Airflow (the batch side's DAGs, infra/airflow/dags) in its own venv; see infra/airflow/requirements.txt.
$(AIRFLOW_VENV)/.installed: infra/airflow/requirements.txt
	@test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install -q --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install -q -r infra/airflow/requirements.txt
	@touch $@

# Delta Lake, Spark's Kafka connector, the PostgreSQL JDBC driver and the Apache Kafka broker, pinned in
# infra/maven/pom.xml, copied once into $(LAKEHOUSE_JARS); later runs need no network.
$(JARS_STAMP): $(MAVEN_POMS)
	rm -rf $(LAKEHOUSE_JARS).partial
	mvn -B -q -f infra/maven/pom.xml package -Djars.dir=$(LAKEHOUSE_JARS).partial
	rm -rf $(LAKEHOUSE_JARS) && mv $(LAKEHOUSE_JARS).partial $(LAKEHOUSE_JARS)
	@touch $@

jars: system $(JARS_STAMP)

# The local Spark driver's class-data sharing archive (lakehouse/jvm_archive.py): a job's JVM starts on ~half
# the CPU. Built once per JDK and jar set (~1.5 min), a no-op afterwards. The SQL endpoint's authorization layer
# (infra/governance/jvm, Scala) compiled with pyspark's own Scala compiler (~15 s, a no-op when up to date).
venv: system $(VENV)/.installed $(SUPERSET_VENV)/.installed $(AIRFLOW_VENV)/.installed $(JARS_STAMP)
	@$(PY) -m lakehouse.jvm_archive
	@$(PY) -m lakehouse.governance.jar >/dev/null

demo: venv
	$(VENV)/bin/lakehouse demo

test: venv
	$(PY) -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=40

lint: venv
	$(VENV)/bin/ruff check .

clean-state:
	-$(VENV)/bin/lakehouse pipeline stop
	-$(VENV)/bin/lakehouse bi stop
	-$(VENV)/bin/lakehouse sql-endpoint stop
	-$(VENV)/bin/lakehouse cdc stop
	-$(VENV)/bin/lakehouse landing stop
	-$(VENV)/bin/lakehouse spark-cluster stop
	-$(VENV)/bin/lakehouse services stop
	rm -rf $(LAKEHOUSE_HOME)
