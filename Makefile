# The two commands of README.md: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
VF     := $(VENV)/bin/vidfilter
# The CPU build of torch; installed first so that the range in pyproject.toml needs nothing more.
TORCH  ?= torch==2.13.0
DEMO   ?= demo_out
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: venv demo test test-slow soak bench bench-quality clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) "$(TORCH)"
	$(PIP) -e ".[dev,napari]"
	@touch $@

venv: $(VENV)/.installed

# The main job on the bundled example (examples/mouse_clip.mp4, 900 frames 640x480, MIT licence):
# train a background model for ~2 minutes on the CPU, write background/foreground to OME-Zarr,
# a preview MP4 and a PNG panel, and beside it the median-projection baseline and the shipped open-arena
# bundle with no training (vidfilter run --model open-arena) for comparison.
demo: venv
	$(VF) info examples/mouse_clip.mp4
	$(VF) train examples/mouse_clip.mp4 --config configs/demo_mouse.yaml --out $(DEMO)/mouse.vfm
	$(VF) run examples/mouse_clip.mp4 --config configs/demo_mouse.yaml --model $(DEMO)/mouse.vfm --out $(DEMO)/mouse.zarr --format zarr preview --overwrite
	$(VF) run examples/mouse_clip.mp4 --config configs/demo_mouse.yaml --method median --out $(DEMO)/mouse_median.zarr --format zarr preview --overwrite
	$(VF) run examples/mouse_clip.mp4 --config configs/demo_mouse.yaml --model open-arena --out $(DEMO)/mouse_open_arena.zarr --format zarr preview --overwrite
	$(VF) info $(DEMO)/mouse.zarr
	@echo "demo outputs in $(DEMO)/: mouse.zarr (OME-Zarr: foreground opens in napari; the background is stored at keyframes, read it with vidfilter.open or rerun with --background full), mouse.preview.mp4, mouse.preview.png, mouse.report/ (training report); mouse_median.* and mouse_open_arena.* (no training) to compare"

test: venv
	$(PY) -m pytest -q -p no:cacheprovider

test-slow: venv
	$(PY) -m pytest -q -p no:cacheprovider -m "slow or cluster"

# Soak: peak RSS and speed of `vidfilter run` at 1k/5k/20k frames (benchmarks/results/soak.json,
# about 10 min on 2 cores), then the slow fault-injection tests: the 20k-frame run, 200 inputs in one
# batch, repeated SIGKILLs of run and train (docs/reliability.md).
soak: venv
	$(PY) benchmarks/soak.py
	$(PY) -m pytest -q -p no:cacheprovider -m slow tests/faults

bench: venv
	$(PY) benchmarks/io.py --quick
	$(PY) benchmarks/train.py --quick
	$(PY) benchmarks/infer.py --quick
	$(PY) benchmarks/synth.py --quick

# Quality benchmark: vidfilter vs median / running median / max / MOG2 / KNN on generated
# recordings (moving, never-moving, drift + noise) and on the shared example recordings when present (worms boxes, flies panels).
# --quick: 256^2 x 60 frames and short training, about 15-20 min on 2 CPU cores. JSON in
# benchmarks/results/quality.json, figures in benchmarks/results/quality/.
bench-quality: venv
	$(PY) benchmarks/quality.py --quick

clean:
	rm -rf $(DEMO) .pytest_cache
