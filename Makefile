# Fresh machine: `make demo` and `make test` create .venv and install everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned to the local CPU wheel; GPU users override, e.g.
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup setup-test demo test test-slow test-browser latency-browser test-all clean

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e .
	touch $@

# the test extras (pytest, selenium, Triton for its interpreter, ...): not needed to run
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: setup
	$(BIN)/lsd demo

test: setup-test
	$(BIN)/pytest -q

test-slow: setup-test
	$(BIN)/pytest -q -m slow

# The browser tests run in a loopback-only network namespace (server and Chromium both
# inside): nothing can leave the machine and WebRTC has only 127.0.0.1. Not root: -rn.
NETNS := unshare $(if $(filter 0,$(shell id -u)),-n,-rn)
test-browser: setup-test
	$(NETNS) sh -c 'ip link set lo up && exec $(BIN)/pytest -q -s -m browser'

# capture-to-display latency pooled over RUNS browser sessions (each as test-browser runs
# it); e.g. LSD_SERVE_CHECKPOINT=checkpoints/lsd-tiny LSD_SERVE_BACKEND=compile make latency-browser
RUNS ?= 6
LATENCY_OUT ?= browser-latency.jsonl
latency-browser: setup-test
	rm -f $(LATENCY_OUT)
	for i in $$(seq $(RUNS)); do LSD_SERVE_LATENCY_OUT=$(abspath $(LATENCY_OUT)) \
		LSD_SERVE_LATENCY_SECONDS=$${LSD_SERVE_LATENCY_SECONDS:-10} \
		$(NETNS) sh -c 'ip link set lo up && exec $(BIN)/pytest -q -m browser -k latency' || exit 1; done
	$(BIN)/python tests/pool_latency.py $(LATENCY_OUT)

test-all: setup-test
	$(BIN)/pytest -q -m ""

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache lsd-demo.mp4
