"""Inference inside napari's ``thread_worker`` vs a direct call (micro-sam #536/#740).

Runs the same 1024^2 prediction (a) directly in the main thread, (b) in
``napari.qt.threading.thread_worker`` while a napari viewer's Qt event loop runs and the
progress yields are connected to a slot, as the widgets will do. Needs Qt and a display:

    xvfb-run -a python benchmarks/backend_napari_thread.py

Prints one table; the result is recorded in docs/backend.md.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    os.environ.setdefault("NAPARI_ATOMSEG_THREADS", "2")
    from napari.qt.threading import thread_worker
    from qtpy.QtWidgets import QApplication

    import napari
    from napari_atomseg.backend import iter_predict, predict
    from napari_atomseg.backend.cards import card_from_dict
    from napari_atomseg.backend.nets import build_model
    from napari_atomseg.backend.registry import export_model, get_model

    arch = {"type": "unet", "base_channels": 16, "depth": 3, "stem_stride": 2}
    card = card_from_dict(
        {
            "name": "thread_bench",
            "task": "atoms",
            "architecture": arch,
            "outputs": [{"name": "heatmap", "activation": "sigmoid"}],
            "input": {"working_pixel_size_nm": 0.02, "tile_px": 512, "overlap_px": 64},
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(build_model(arch, [1]), card, Path(tmp)).path
        model = get_model(path)
        img = (np.random.default_rng(0).poisson(30, (1024, 1024)) + 100).astype(np.uint16)
        predict(model, img, 0.02)  # warm-up

        direct = []
        for _ in range(3):
            t = time.perf_counter()
            predict(model, img, 0.02)
            direct.append(time.perf_counter() - t)

        viewer = napari.Viewer(show=True)
        viewer.add_image(img)
        app = QApplication.instance()
        in_worker = []
        n_progress = []
        for _ in range(3):
            done = {}
            worker = thread_worker(iter_predict)(model, img, 0.02)
            worker.yielded.connect(lambda p: n_progress.append(p.done))
            worker.returned.connect(lambda r: done.setdefault("t", time.perf_counter()))
            t = time.perf_counter()
            worker.start()
            while "t" not in done:
                app.processEvents()
                time.sleep(0.001)
            in_worker.append(done["t"] - t)
        viewer.close()

    print(f"# napari {napari.__version__}: 1024^2 prediction, {arch}")
    print("| where | best of 3, s | median, s |")
    print("|---|---|---|")
    print(f"| direct call, main thread | {min(direct):.2f} | {np.median(direct):.2f} |")
    print(
        f"| napari thread_worker, event loop running | {min(in_worker):.2f} | {np.median(in_worker):.2f} |"
    )


if __name__ == "__main__":
    main()
