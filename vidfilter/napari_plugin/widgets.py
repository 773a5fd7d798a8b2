"""The dock widgets: :class:`RunWidget` (``vidfilter run``) and :class:`TrainWidget` (``vidfilter train``).

Each is a magicgui :class:`~magicgui.widgets.Container` around a :class:`~vidfilter.napari_plugin.jobs.Job`:
the work runs in a thread, the widget polls it (a Qt timer, every :data:`POLL_MS`) to move its
progress bar and napari's activity progress, and shows the outcome when it ends: the run's store
as layers (through the reader), the training's verdict and loss plot. Cancel stops the work at its
next frame (run) or step (training), leaving what resumes it. The work itself is
:func:`~vidfilter.napari_plugin.jobs.run_store` and :func:`~vidfilter.napari_plugin.jobs.train_bundle`.

The widgets take any object with napari's ``layers`` list and ``add_layer`` (a ``napari.Viewer`` or
a ``napari.components.ViewerModel``); :meth:`_JobWidget.wait` drives a job to its end without an
event loop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from magicgui.widgets import (CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, ProgressBar, PushButton,
    SpinBox, Widget)

from vidfilter.napari_plugin import jobs
from vidfilter.napari_plugin.layers import LayerData, store_layers

__all__ = ["POLL_MS", "RunWidget", "TrainWidget", "add_layers", "layer_source"]

#: How often a widget looks at its running job, in milliseconds.
POLL_MS = 100
#: Steps of the progress bars.
_STEPS = 1000


def layer_source(layer: Any) -> str | None:
    """The recording behind a layer: the path vidfilter's reader recorded, else the file napari read it from."""
    path = (getattr(layer, "metadata", None) or {}).get("vidfilter", {}).get("path")
    if path is None:
        path = getattr(getattr(layer, "source", None), "path", None)
    return None if path is None else str(path)


def add_layers(viewer: Any, items: Sequence[LayerData]) -> list[Any]:
    """Add layer data tuples to ``viewer`` in order, replacing layers of the same names."""
    from napari.layers import Layer

    added = []
    for data, kwargs, kind in items:
        name = kwargs.get("name")
        if name is not None and name in viewer.layers:
            viewer.layers.remove(name)
        added.append(viewer.add_layer(Layer.create(data, kwargs, kind)))
    return added


def _path(value: Any) -> str | None:
    """A FileEdit's value as a path, ``None`` when empty."""
    if value is None or (isinstance(value, (tuple, list)) and not value):
        return None
    if isinstance(value, (tuple, list)):
        return os.fspath(value[0])
    text = os.fspath(value)
    return None if text in ("", ".") else text


class _JobWidget(Container):
    """Source (an image layer or files), start and cancel, a progress bar and a status line around a :class:`Job`."""

    start_text = "Start"

    def __init__(self, napari_viewer: Any, widgets: Sequence[Widget], file_mode: str = "r") -> None:
        self.viewer = napari_viewer
        self.layer = ComboBox(label="image layer", choices=self._layer_choices, nullable=True)
        self.files = FileEdit(label="or file", mode=file_mode, nullable=True)
        self.start_button = PushButton(text=self.start_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.bar = ProgressBar(label="progress", min=0, max=_STEPS, value=0)
        self.status = Label(label="status", value="")
        super().__init__(widgets=[self.layer, self.files, *widgets, self.start_button, self.cancel_button,
                                  self.bar, self.status])
        self.start_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed,
                      napari_viewer.layers.selection.events.active):
            event.connect(self._refresh_layers)
        self._refresh_layers()
        self.job: jobs.Job | None = None
        self._activity: Any = None
        from qtpy.QtCore import QTimer

        self._timer = QTimer()
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)

    def _layer_choices(self, _: Any = None) -> list[str]:
        """Image layers with a recording behind them (not a training report's plot)."""
        from napari.layers import Image

        return [lyr.name for lyr in self.viewer.layers if isinstance(lyr, Image) and layer_source(lyr)
                and lyr.metadata.get("vidfilter", {}).get("role") != "loss"]

    def _refresh_layers(self, _: Any = None) -> None:
        """New choices; the current layer when it is one of them, else the top one."""
        self.layer.reset_choices()
        active = self.viewer.layers.selection.active
        if active is not None and active.name in self.layer.choices:
            self.layer.value = active.name
        elif self.layer.value is None and self.layer.choices:
            self.layer.value = self.layer.choices[-1]

    def sources(self) -> list[str]:
        """The chosen files, else the chosen layer's recording; raises ``ValueError`` when neither is set."""
        value = self.files.value
        chosen = [os.fspath(v) for v in value] if isinstance(value, (tuple, list)) else [_path(value)]
        chosen = [c for c in chosen if c]
        if chosen:
            return chosen
        if self.layer.value is not None and self.layer.value in self.viewer.layers:
            path = layer_source(self.viewer.layers[self.layer.value])
            if path:
                return [path]
        raise ValueError("choose an image layer opened from a file, or a file")

    def _work(self) -> Callable[[Callable[..., None]], Any]:
        """The job's function, read from the widget's fields now (in the GUI thread)."""
        raise NotImplementedError

    def _finished(self, job: jobs.Job) -> None:
        """Show the outcome of ``job``."""
        raise NotImplementedError

    def start(self, *_: Any) -> jobs.Job | None:
        """Start the job in a thread (unless one runs); the job, or ``None`` when a field is not set."""
        if self.job is not None and self.job.running:
            return self.job
        try:
            work = self._work()
        except Exception as exc:  # a missing field or a bad config: said on the status line
            self.status.value = f"not started: {_one_line(exc)}"
            return None
        from napari.utils import progress

        self._activity = progress(total=_STEPS, desc=f"vidfilter {self.start_text.lower()}")
        self.bar.value = 0
        self.status.value = "starting..."
        self.start_button.enabled, self.cancel_button.enabled = False, True
        self.job = jobs.Job(work).start()
        self._timer.start()
        return self.job

    def cancel(self, *_: Any) -> None:
        """Stop the running job at its next frame or step."""
        if self.job is not None and self.job.running:
            self.job.cancel()
            self.status.value = "cancelling..."

    def poll(self) -> bool:
        """Move the progress bars; when the job has ended, show its outcome. Whether it still runs."""
        job = self.job
        if job is None:
            return False
        step = int(round(job.fraction * _STEPS))
        self.bar.value = step
        if self._activity is not None and step > self._activity.n:
            self._activity.update(step - self._activity.n)
        if job.running:
            if job.total and not job.cancelled:
                self.status.value = self._progress_text(job)
            return True
        self._timer.stop()
        if self._activity is not None:
            self._activity.close()
            self._activity = None
        self.start_button.enabled, self.cancel_button.enabled = True, False
        if job.status == "failed":
            self.status.value = f"failed: {_one_line(job.error)}"
        else:
            self._finished(job)
        return False

    def _progress_text(self, job: jobs.Job) -> str:
        return f"{job.fraction:.0%}"

    def wait(self, timeout: float = 60.0) -> str:
        """Poll until the job ends (no event loop needed); its status."""
        deadline = time.monotonic() + timeout
        while self.poll():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the job is still running after {timeout} s")
            time.sleep(POLL_MS / 1000)
        return "none" if self.job is None else self.job.status


def _one_line(exc: BaseException | None) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class RunWidget(_JobWidget):
    """Separate background and foreground of a recording (``vidfilter run``) and open the result.

    Parameters
    ----------
    napari_viewer : napari.Viewer or napari.components.ViewerModel
        Where the result's layers go.
    """

    start_text = "Run"

    def __init__(self, napari_viewer: Any) -> None:
        choices = jobs.method_choices()
        self.method = ComboBox(label="method", choices=choices, value=choices[0])
        self.bundle = FileEdit(label="bundle file", mode="r", filter="*.vfm", nullable=True)
        self.out = FileEdit(label="output (.zarr)", mode="w", filter="*.zarr", nullable=True)
        self.config = FileEdit(label="config (.yaml)", mode="r", filter="*.yaml *.yml", nullable=True)
        self.mask = CheckBox(label="mask", value=False)
        self.tracks = CheckBox(label="tracks", value=False, tooltip="then link the mask's objects into tracks (vidfilter track)")
        self.overwrite = CheckBox(label="overwrite", value=False)
        super().__init__(napari_viewer, [self.method, self.bundle, self.out, self.config, self.mask, self.tracks,
                                         self.overwrite])

    def output(self, source: str) -> Path:
        """The chosen output store, else ``<recording name>.zarr`` beside the recording."""
        out = _path(self.out.value)
        return Path(out) if out else jobs.default_output(source)

    def _work(self) -> Callable[[Callable[..., None]], Any]:
        source = self.sources()[0]
        out = self.output(source)
        if out.resolve() == Path(source).resolve():
            raise ValueError(f"the output {out} is the input; choose another output")
        jobs.parse_method(self.method.value, _path(self.bundle.value))  # a missing bundle is said now
        # tracks come from the mask: asking for them asks for the mask
        kw = {"bundle_file": _path(self.bundle.value), "config": _path(self.config.value),
              "mask": self.mask.value or self.tracks.value, "tracks": self.tracks.value, "overwrite": self.overwrite.value}
        self._target = out
        return lambda report: jobs.run_store(source, out, self.method.value, progress=report, **kw)

    def _progress_text(self, job: jobs.Job) -> str:
        return f"frame {int(job.done)} of {int(job.total)}"

    def _finished(self, job: jobs.Job) -> None:
        out = self._target
        if job.status == "cancelled":
            self.status.value = (f"cancelled at frame {int(job.done)} of {int(job.total)}; Run again to resume "
                                 f"from {out.name}.partial")
            return
        result = job.result
        if result.status == "failed":
            self.status.value = f"failed: {result.error}"
            return
        add_layers(self.viewer, store_layers(Path(result.output or out)))
        self.status.value = f"{result.status}: {result.frames} frames in {out.name}"


class TrainWidget(_JobWidget):
    """Train a background model for some minutes (``vidfilter train``), then show its verdict and loss plot.

    Parameters
    ----------
    napari_viewer : napari.Viewer or napari.components.ViewerModel
        Where the loss plot goes.
    """

    start_text = "Train"

    def __init__(self, napari_viewer: Any) -> None:
        self.minutes = FloatSpinBox(label="minutes", value=2.0, min=0.05, max=24 * 60, step=0.5)
        self.steps = SpinBox(label="steps (0: by time)", value=0, min=0, max=10_000_000)
        self.out = FileEdit(label="bundle (.vfm)", mode="w", filter="*.vfm", nullable=True)
        self.config = FileEdit(label="config (.yaml)", mode="r", filter="*.yaml *.yml", nullable=True)
        self.resume = CheckBox(label="resume", value=False)
        self.verdict = Label(label="verdict", value="")
        super().__init__(napari_viewer, [self.minutes, self.steps, self.out, self.config, self.resume, self.verdict],
                         file_mode="rm")
        self.outcome: jobs.TrainOutcome | None = None

    def _work(self) -> Callable[[Callable[..., None]], Any]:
        inputs = self.sources()
        out = Path(_path(self.out.value) or jobs.default_output(inputs[0], ".vfm"))
        kw = {"minutes": float(self.minutes.value), "steps": int(self.steps.value) or None,
              "config": _path(self.config.value), "resume": self.resume.value}
        self.verdict.value = ""
        return lambda report: jobs.train_bundle(inputs, out, progress=report, **kw)

    def _finished(self, job: jobs.Job) -> None:
        if job.status == "cancelled":
            self.status.value = "cancelled; tick resume and Train again to continue from the last checkpoint"
            return
        outcome: jobs.TrainOutcome = job.result
        self.outcome = outcome
        self.verdict.value = outcome.word
        self.verdict.tooltip = outcome.verdict
        self.status.value = f"{outcome.bundle.name}: {outcome.verdict}"
        if outcome.loss_plot.is_file():
            add_layers(self.viewer, [_loss_layer(outcome)])
        from napari.utils.notifications import show_info

        show_info(f"vidfilter train: {outcome.verdict}")


def _loss_layer(outcome: jobs.TrainOutcome) -> LayerData:
    """The report's ``loss.png`` as an RGB image layer."""
    import cv2

    rgb = cv2.cvtColor(cv2.imread(str(outcome.loss_plot), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    meta = {"vidfilter": {"role": "loss", "path": str(outcome.loss_plot), "verdict": outcome.verdict,
                          "bundle": str(outcome.bundle)}}
    return rgb, {"name": f"{outcome.bundle.stem} loss", "rgb": True, "metadata": meta}, "image"
