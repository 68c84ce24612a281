# Easel. `make run` starts everything on the embedded defaults; `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
WORKER_CONCURRENCY ?= 2
# SIMULATORS=1: `make run` also serves every provider simulator (TEST EQUIPMENT on loopback,
# tests/simulators/serve.py) and points the provider env vars at them, to try every provider
# offline. Add models with e.g. `manage.py addmodel sim-meteron --provider meteron --remote-id x`.
SIMULATORS ?= 0

.PHONY: run test lint bench install clean audit superuser

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# Web server and Celery worker (with the reaper's beat) on SQLite, local disk and kombu's
# filesystem broker unless DATABASE_URL / REDIS_URL say otherwise. Ctrl-C stops both.
# The first run writes a git-ignored .env (DEBUG=true, a generated SECRET_KEY, mode 0600) that
# every later command reads (config/envfile.py); var/ is made whatever the broker is.
run: $(VENV)/.installed
	@$(PY) -m config.envfile
	@mkdir -p var
	$(PY) manage.py migrate --noinput
	@$(PY) -m config.firstrun $(PORT)
	@trap 'kill 0' INT TERM; \
	if [ "$(SIMULATORS)" = "1" ]; then \
		echo "  SIMULATORS=1: provider simulators (test equipment, not real providers) on 127.0.0.1:87xx"; \
		eval "$$($(PY) tests/simulators/serve.py --print-env)"; \
		$(PY) tests/simulators/serve.py & \
	fi; \
	$(PY) -m config.keepalive $(VENV)/bin/celery -A config worker --beat --loglevel=INFO \
		--concurrency=$(WORKER_CONCURRENCY) --schedule=var/celerybeat-schedule & \
	$(PY) manage.py runserver 127.0.0.1:$(PORT) --noreload & \
	wait

# A staff account (createsuperuser asks; DJANGO_SUPERUSER_USERNAME, _EMAIL and
# DJANGO_SUPERUSER_PASSWORD in the environment make it non-interactive).
superuser: $(VENV)/.installed
	$(PY) manage.py createsuperuser $(if $(DJANGO_SUPERUSER_PASSWORD),--noinput,)

test: export EASEL_ALLOW_DEV_SECRET ?= 1
test: export EASEL_ENV_FILE ?=
test: $(VENV)/.installed
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks: every target as a ratio against a baseline measured in the same run (bench/).
# Needs PostgreSQL and Redis; writes 1M generations to BENCH_DATABASE_URL on first use.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/easel_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/7
bench: $(VENV)/.installed
	-psql "$(dir $(BENCH_DATABASE_URL))postgres" -c "CREATE DATABASE $(notdir $(BENCH_DATABASE_URL))" 2>/dev/null
	DATABASE_URL=$(BENCH_DATABASE_URL) EASEL_ALLOW_DEV_SECRET=1 $(PY) manage.py migrate --noinput -v0
	DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL) $(PY) bench/run.py $(BENCH_ARGS)

# Known vulnerabilities in the pinned runtime requirements, from PyPI's JSON API (a package
# registry; nothing else is contacted). Fails on any finding and when the service cannot be
# reached (fail closed). Pins PyPI does not know (e.g. from a local wheel mirror) are listed as
# skipped; AUDIT_STRICT=1 makes those fatal too.
audit: $(VENV)/.installed
	$(VENV)/bin/pip-audit -r requirements.txt --vulnerability-service pypi \
		--progress-spinner off $(if $(filter 1 true,$(AUDIT_STRICT)),--strict,)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	EASEL_ALLOW_DEV_SECRET=1 $(VENV)/bin/lint-imports

clean:
	rm -rf var test-artifacts
