"""napari plugin of vidfilter (``pip install vidfilter[napari]``), declared in ``napari.yaml``.

- :mod:`~vidfilter.napari_plugin.reader`: napari's reader for output stores of ``vidfilter run``
  (input, background, foreground, mask and tracks layers), recordings and tracks tables;
- :mod:`~vidfilter.napari_plugin.layers`: the layers those readers give, as plain data (no napari);
- :mod:`~vidfilter.napari_plugin.jobs`: the run and train work, in a thread with progress and
  cancel (no Qt);
- :mod:`~vidfilter.napari_plugin.widgets`: the Run and Train dock widgets (magicgui).

Nothing in the core package imports this subpackage, napari or Qt.
"""
