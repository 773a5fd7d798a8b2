# The two commands of README.md: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
VF     := $(VENV)/bin/vidfilter
# The CPU build of torch; installed first so that the range in pyproject.toml needs nothing more.
TORCH  ?= torch==2.13.0
DEMO   ?= demo_out
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: venv demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) "$(TORCH)"
	$(PIP) -e ".[dev]"
	@touch $@

venv: $(VENV)/.installed

# The main job on the bundled example (examples/mouse_clip.mp4, 900 frames 640x480, MIT licence):
# train a background model for ~2 minutes on the CPU, write background/foreground to OME-Zarr,
# a preview MP4 and a PNG panel, and the median-projection baseline beside it for comparison.
demo: venv
	$(VF) info examples/mouse_clip.mp4
	$(VF) train examples/mouse_clip.mp4 --config configs/demo_mouse.yaml --out $(DEMO)/mouse.vfm
	$(VF) run examples/mouse_clip.mp4 --config configs/demo_mouse.yaml --model $(DEMO)/mouse.vfm --out $(DEMO)/mouse.zarr --format zarr preview --overwrite
	$(VF) run examples/mouse_clip.mp4 --config configs/demo_mouse.yaml --method median --out $(DEMO)/mouse_median.zarr --format zarr preview --overwrite
	$(VF) info $(DEMO)/mouse.zarr
	@echo "demo outputs in $(DEMO)/: mouse.zarr (OME-Zarr, opens in napari), mouse.preview.mp4, mouse.preview.png, mouse.report/ (training report)"

test: venv
	$(PY) -m pytest -q -p no:cacheprovider

test-slow: venv
	$(PY) -m pytest -q -p no:cacheprovider -m slow

bench: venv
	$(PY) benchmarks/io.py --quick
	$(PY) benchmarks/train.py --quick
	$(PY) benchmarks/infer.py --quick

clean:
	rm -rf $(DEMO) .pytest_cache
