"""Redo docs/images/widget_*.png: the plugin's widgets working in napari on real data.

Usage (needs a display; on a headless machine run it under Xvfb)::

    OMP_NUM_THREADS=1 xvfb-run -a -s "-screen 0 1600x1000x24" \\
        python docs/make_widget_screenshots.py [--only pt sto graphene simulate finetune]
        [--atoms-model NAME_OR_CARD] [--segment-model NAME_OR_CARD] [--thread-check]

Screenshots (each a fresh viewer with one docked widget, canvas and widget together):

- ``widget_find_atoms_pt.png``  -- Find atoms on a real HAADF-STEM image of single Pt
  atoms on carbon (``../shared/data/pt_single_atoms``, image 027, 0.0293 nm/px) with the
  ``atoms_pt_carbon`` model when one is installed (fine-tuned on all 11 labelled images,
  this one included: the shot shows the workflow, docs/atoms_pt.md has the held-out
  scores), else the default, at the model card's recommended threshold unless
  ``--pt-threshold`` is given; the hand-placed positions overlaid and scored (F1 within
  3 px);
- ``widget_find_atoms_sto.png`` -- Find atoms on a real instrument file opened by the
  reader (``formats/openNCEM/16_STOimage.emi``, SrTiO3, FEI TIA, 0.0100 nm/px);
- ``widget_segment_graphene.png`` -- Segment regions on a real HRTEM graphene image
  (``graphene_contamination``; its pixel size is the FFT estimate shipped with the set)
  with the Jaccard index against the hand-made mask in the overlay text;
- ``widget_simulate.png`` -- the Simulate widget after simulating MoS2 with vacancies
  and contamination, ground-truth columns shown;
- ``widget_finetune_pt.png`` -- the Fine-tune widget after fine-tuning the default model
  on two labelled Pt images (021, 025), with the new model's atoms on image 027, which it
  never saw, scored against the hand labels (F1 within 0.1 nm).

The models are the shipped defaults unless named. PNGs are palette-quantised (< 600 kB).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "docs" / "images"
MAX_BYTES = 600_000
#: 027 is not one of the two images (021, 025) atoms_pt_carbon was fine-tuned on
PT_IMAGE = "027_HAADF_15nm_Sample_PtNC_21Oct20.tif"
#: the shipped model for single heavy atoms on carbon, used for the Pt shot when installed
PT_MODEL = "atoms_pt_carbon"
GRAPHENE_IMAGE = "2014_0601_Gr_FS_038_layer_0024.png"
#: images ranked by the folder-sorting section in the graphene screenshot
N_SORTED = 10


def _wait(widget_panel: Any, timeout_s: float = 900.0) -> None:
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    start = time.perf_counter()
    while widget_panel.busy:
        app.processEvents()
        time.sleep(0.02)
        if time.perf_counter() - start > timeout_s:
            raise SystemExit("timed out waiting for the widget")
    for _ in range(20):  # let the layers draw
        app.processEvents()
        time.sleep(0.02)


def _viewer(widget_name: str) -> tuple[Any, Any]:
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1500, 950)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-atomseg", widget_name)
    return viewer, widget


def _text(viewer: Any, text: str) -> None:
    overlays = viewer.canvas.overlays
    overlays.scale_bar.visible = True
    overlays.scale_bar.colored = True
    overlays.scale_bar.font_size = 14
    overlays.scale_bar.position = "bottom_left"
    overlays.text.visible = True
    overlays.text.text = text
    overlays.text.font_size = 11
    overlays.text.color = "white"
    overlays.text.position = "top_left"


def _save(viewer: Any, name: str) -> Path:
    from PIL import Image

    pixels = viewer.screenshot(canvas_only=False, flash=False)
    image = Image.fromarray(pixels[..., :3])
    buffer = io.BytesIO()
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
    if buffer.tell() > MAX_BYTES:
        raise SystemExit(f"{name}: screenshot is {buffer.tell():,} bytes, over {MAX_BYTES:,}")
    out = OUT / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buffer.getvalue())
    viewer.close()
    print(f"wrote {out} ({buffer.tell():,} bytes)")
    return out


def _set_model(widget: Any, model: str | None) -> None:
    if not model:
        return
    if model.endswith((".yaml", ".yml")):
        widget.model_card.value = model
    else:
        widget.model.value = model


def _run_find_atoms(viewer: Any, widget: Any, layer: Any, model: str | None) -> Any:
    widget.image.value = layer
    _set_model(widget, model)
    t0 = time.perf_counter()
    widget.run()
    _wait(widget.panel)
    return time.perf_counter() - t0


def shot_pt(model: str | None, threshold: float | None = None) -> None:
    import pandas as pd

    from napari_atomseg._napari.widgets._common import model_names
    from napari_atomseg.atoms.metrics import point_metrics

    path = DATA / "pt_single_atoms" / "images" / PT_IMAGE
    if model is None and PT_MODEL in model_names("atoms"):
        model = PT_MODEL
    viewer, widget = _viewer("Find atoms")
    (layer,) = viewer.open(str(path), plugin="napari-atomseg")
    layer.contrast_limits = tuple(np.percentile(layer.data, [0.5, 99.8]))
    truth = pd.read_csv(DATA / "pt_single_atoms" / "coordinates" / f"{path.name[:3]}_Results.csv")
    true_px = truth[["Y", "X"]].to_numpy(dtype=float)
    viewer.add_points(
        true_px, name="hand-placed (Mitchell et al.)", size=6, symbol="cross",
        face_color="cyan", border_width=0, scale=layer.scale, units=layer.units,
    )  # fmt: skip
    widget.image.value = layer
    _set_model(widget, model)  # moves the sliders to the card's recommended settings
    if threshold is not None:
        widget.threshold.value = threshold
    threshold = float(widget.threshold.value)
    seconds = _run_find_atoms(viewer, widget, layer, None)
    points = viewer.layers[f"{layer.name} columns"]
    m = point_metrics(points.data[:, -2:], true_px, radius_px=3.0)
    print(
        f"pt: {len(points.data)} found at threshold {threshold}, {len(true_px)} hand-placed, "
        f"F1 {m.f1:.3f}, {seconds:.1f} s"
    )
    _text(
        viewer,
        f"{path.name}\n{len(points.data)} atoms found (gold; {points.metadata['model']}, "
        f"threshold {threshold:.2f})\n{len(true_px)} hand-placed (cyan); "
        f"F1 {m.f1:.2f} (match within 3 px)"
        + (
            "\n(this image is in the model's fine-tuning set; held-out F1: docs/atoms_pt.md)"
            if points.metadata["model"] == PT_MODEL
            else ""
        ),
    )
    viewer.layers[f"{layer.name} column labels"].visible = False
    viewer.layers.selection.active = points
    viewer.reset_view()
    _save(viewer, "widget_find_atoms_pt.png")


def _direct_call(layer: Any, model: str | None) -> dict[str, float]:
    """Backend timings of the same prediction called on this (the GUI) thread."""
    from napari_atomseg.atoms.heatmap import predict_heatmap

    image = np.asarray(layer.data)
    size = layer.metadata["pixel_size_nm"]
    predict_heatmap(image, size, model or "default")  # load + warm up
    return dict(predict_heatmap(image, size, model or "default").timings_s)


def _compare_worker_with_direct_call(points: Any, direct: dict[str, float]) -> None:
    """Network time inside the widget's worker thread vs the same call on this thread."""
    in_worker = points.metadata["heatmaps"][0][1].timings_s
    print(
        "network s, widget worker vs direct call: "
        f"{in_worker['network_s']:.2f} vs {direct['network_s']:.2f} "
        f"(total {in_worker['total_s']:.2f} vs {direct['total_s']:.2f})"
    )


def shot_sto(model: str | None) -> None:
    path = DATA / "formats" / "openNCEM" / "16_STOimage.emi"
    viewer, widget = _viewer("Find atoms")
    (layer,) = viewer.open(str(path), plugin="napari-atomseg")
    layer.contrast_limits = tuple(np.percentile(layer.data, [0.5, 99.5]))
    direct = _direct_call(layer, model)
    first = _run_find_atoms(viewer, widget, layer, model)
    first_timings = dict(
        viewer.layers[f"{layer.name} columns"].metadata["heatmaps"][0][1].timings_s
    )
    seconds = _run_find_atoms(viewer, widget, layer, model)  # threads now warm, as the direct call
    print(f"widget run 1: {first:.1f} s (network {first_timings['network_s']:.2f} s), run 2:")
    points = viewer.layers[f"{layer.name} columns"]
    spacing = np.nanmedian(points.features["nn_spacing_nm"])
    print(f"sto: {len(points.data)} columns, median NN {spacing:.4f} nm, {seconds:.1f} s")
    _compare_worker_with_direct_call(points, direct)
    _text(
        viewer,
        f"{path.name} (FEI TIA, {layer.scale[-1]:.4f} nm/px from the file)\n"
        f"{len(points.data)} columns\nmedian nearest-neighbour {spacing * 1000:.0f} pm",
    )
    viewer.layers.selection.active = points
    viewer.reset_view()
    viewer.camera.zoom *= 1.6  # the centre, so single columns are visible
    _save(viewer, "widget_find_atoms_sto.png")


def shot_finetune(steps: int | None = None) -> None:
    """Fine-tune the default model in the widget on two labelled Pt images (021, 025),
    then score the new card on an image it never saw (027)."""
    import tempfile

    import pandas as pd

    from napari_atomseg.atoms.find import find_atoms
    from napari_atomseg.atoms.metrics import point_metrics
    from napari_atomseg.backend.cards import load_card

    viewer, widget = _viewer("Fine-tune atom finder")
    folder = DATA / "pt_single_atoms"
    layers = {}
    for key in ("021", "025", "027"):
        (path,) = sorted((folder / "images").glob(f"{key}_*.tif"))
        (layer,) = viewer.open(str(path), plugin="napari-atomseg")
        layer.name = key
        layer.contrast_limits = tuple(np.percentile(layer.data, [0.5, 99.8]))
        truth = pd.read_csv(folder / "coordinates" / f"{key}_Results.csv")
        true_px = truth[["Y", "X"]].to_numpy(dtype=float)
        points = viewer.add_points(
            true_px, name=f"{key} atoms (hand-placed)", size=8, symbol="ring",
            face_color="cyan", border_width=0, scale=layer.scale, units=layer.units,
        )  # fmt: skip
        layers[key] = (layer, points, true_px)
    for key in ("021", "025"):
        widget.image.value, widget.points.value = layers[key][0], layers[key][1]
        widget.add_pair.changed.emit(True)
    if steps is not None:
        widget.steps.value = steps
    with tempfile.TemporaryDirectory() as tmp:
        widget.folder.value = tmp
        widget.model_name.value = "pt_two_images"
        t0 = time.perf_counter()
        widget.run()
        _wait(widget.panel, timeout_s=3600)
        seconds = time.perf_counter() - t0
        card = load_card(widget.card_path)
        layer, _, true_px = layers["027"]
        found = find_atoms(layer.data, layer.scale[-1], model=str(widget.card_path))
        before = find_atoms(layer.data, layer.scale[-1])
    pred = found[["y_px", "x_px"]].to_numpy(float)
    m = point_metrics(pred, true_px, radius_nm=0.1, pixel_size_nm=layer.scale[-1])
    m0 = point_metrics(
        before[["y_px", "x_px"]].to_numpy(float), true_px, radius_nm=0.1,
        pixel_size_nm=layer.scale[-1],
    )  # fmt: skip
    viewer.add_points(
        pred, name="027 found by the fine-tuned model", size=5, face_color="gold",
        border_width=0, scale=layer.scale, units=layer.units,
    )  # fmt: skip
    for key in ("021", "025"):
        layers[key][0].visible = layers[key][1].visible = False
    print(
        f"finetune: {seconds:.0f} s, threshold {card.postprocess['threshold']}; held-out 027 "
        f"F1 {m.f1:.3f} (default model {m0.f1:.3f})"
    )
    _text(
        viewer,
        f"fine-tuned on Pt images 021 + 025 (hand labels) in {seconds / 60:.1f} min\n"
        f"held-out image 027: F1 {m.f1:.2f} within 0.1 nm (default model {m0.f1:.2f})\n"
        "gold: found; cyan rings: hand-placed (Mitchell et al.)",
    )
    viewer.layers.selection.active = viewer.layers["027 found by the fine-tuned model"]
    viewer.reset_view()
    viewer.camera.zoom *= 1.3
    _save(viewer, "widget_finetune_pt.png")


def _graphene_folder_as_tiffs(folder: Path, sizes: Any, out: Path) -> None:
    """The first N_SORTED graphene PNGs as TIFFs calibrated with the set's FFT estimates
    (a PNG stores no pixel size)."""
    from napari_atomseg.io import Calibration, write_image_tiff
    from napari_atomseg.segmentation.data import _read_grey_png

    for path in sorted((folder / "images").glob("*.png"))[:N_SORTED]:
        cal = Calibration.from_pixel_size_nm(float(sizes.loc[path.name, "est_pixel_size_nm"]))
        write_image_tiff(out / f"{path.stem}.tif", _read_grey_png(path), cal)


def shot_graphene(model: str | None) -> None:
    import tempfile

    import pandas as pd

    from napari_atomseg.segmentation.data import _read_grey_png

    folder = DATA / "graphene_contamination"
    sizes = pd.read_csv(folder / "estimated_pixel_size_nm.csv").set_index("image")
    pixel_size = float(sizes.loc[GRAPHENE_IMAGE, "est_pixel_size_nm"])
    image = _read_grey_png(folder / "images" / GRAPHENE_IMAGE)
    hand = (_read_grey_png(folder / "labels" / GRAPHENE_IMAGE) > 127).astype(np.uint8)
    viewer, widget = _viewer("Segment regions")
    layer = viewer.add_image(
        image, name="graphene", scale=(pixel_size, pixel_size), units="nm", colormap="gray"
    )
    widget.image.value = layer
    if model:
        widget.method.value = "unet"
        _set_model(widget, model)
    else:
        from napari_atomseg.segmentation._unet import default_model

        try:
            default_model("contamination")
            widget.method.value = "unet"
        except Exception:  # no shipped U-Net: the Bragg filter needs none
            widget.method.value = "bragg"
    widget.run()
    _wait(widget.panel)
    labels = viewer.layers["graphene contamination"]
    amorphous = labels.data == 1
    jaccard = (amorphous & (hand > 0)).sum() / max(1, (amorphous | (hand > 0)).sum())
    note = ""
    if widget.method.value == "unet":
        # Every real labelled image available was used to fine-tune the shipped U-Net, so
        # quote the untrained Bragg filter on the same image beside it.
        from napari_atomseg.segmentation import segment

        bragg = segment(image, pixel_size, method="bragg").labels == 1
        j_bragg = (bragg & (hand > 0)).sum() / max(1, (bragg | (hand > 0)).sum())
        note = f" (image in the U-Net's fine-tuning set; Bragg filter {j_bragg:.2f})"
    print(f"graphene: {widget.method.value} Jaccard {jaccard:.3f} vs the hand mask{note}")
    outline = viewer.add_labels(
        hand, name="hand-made mask (outline)", scale=layer.scale, units=layer.units
    )
    outline.contour = 2
    outline.colormap = {None: "transparent", 0: "transparent", 1: "cyan"}

    with tempfile.TemporaryDirectory() as tmp:
        _graphene_folder_as_tiffs(folder, sizes, Path(tmp))
        widget.sorting_fold.toggle()  # (folded by default)
        widget.sorting.folder.value = tmp
        widget.sorting.run()
        _wait(widget.sorting.panel)
        print(f"sorting: {widget.sorting.panel.status.value}")
    _text(
        viewer,
        f"{GRAPHENE_IMAGE}\n{pixel_size} nm/px (FFT estimate), {widget.method.value}\n"
        f"{widget.fractions.value}\n"
        f"Jaccard {jaccard:.2f} vs the hand-made mask (cyan outline)\n{note.strip(' ()')}",
    )
    viewer.layers.selection.active = labels
    viewer.reset_view()
    _save(viewer, "widget_segment_graphene.png")


def shot_simulate() -> None:
    viewer, widget = _viewer("Simulate micrograph")
    widget.material.value = "MoS2"
    widget.mode.value = "haadf"
    widget.pixel_size_nm.value = 0.02
    widget.field_of_view_nm.value = 6.0
    widget.vacancy_fraction.value = 0.05
    widget.support_nm.value = 2.0
    widget.contamination.value = 0.25
    widget.dose.value = 2e4
    widget.seed.value = 3
    widget.run()
    _wait(widget.panel)
    viewer.layers["simulated ground truth"].visible = True
    classes = viewer.layers["simulated classes"]
    classes.visible = True
    classes.contour = 2  # outlines of support / contamination, the image stays visible
    _text(viewer, widget.panel.status.value.replace(": ", "\n"))
    viewer.reset_view()
    _save(viewer, "widget_simulate.png")


def thread_check(model: str | None, repeats: int = 5) -> None:
    """Network time of the same prediction: direct call vs the widgets' worker, interleaved.

    napari >= 0.5 users reported torch running much slower inside ``thread_worker``. Both
    paths run ``repeats`` times, alternating, after one warm-up each (the first call in a
    fresh pool thread pays a one-off set-up); the backend's own ``network_s`` is compared.
    """
    from qtpy.QtWidgets import QApplication

    import napari
    from napari_atomseg._napari.widgets._runner import RunPanel
    from napari_atomseg.atoms.heatmap import iter_predict_heatmap, predict_heatmap
    from napari_atomseg.io import read_image

    image, cal = read_image(DATA / "formats" / "openNCEM" / "16_STOimage.emi")
    size, name = cal.pixel_size_nm, model or "default"
    viewer = napari.Viewer(show=True)
    viewer.add_image(image)
    app = QApplication.instance()

    def job() -> Any:
        return (yield from iter_predict_heatmap(image, size, name))

    def in_worker() -> float:
        panel, out = RunPanel(), []
        panel.start(job, on_result=lambda r: out.append(r.timings_s["network_s"]))
        while panel.busy:
            app.processEvents()
            time.sleep(0.02)
        return out[0]

    def direct() -> float:
        return predict_heatmap(image, size, name).timings_s["network_s"]

    direct(), in_worker()
    pairs = [(direct(), in_worker()) for _ in range(repeats)]
    d, w = (np.array(v) for v in zip(*pairs))
    print(f"network s over {repeats} interleaved runs (1024x1024 SrTiO3, model {name}):")
    print(f"  direct call: median {np.median(d):.3f} (min {d.min():.3f}, max {d.max():.3f})")
    print(f"  widget worker: median {np.median(w):.3f} (min {w.min():.3f}, max {w.max():.3f})")
    viewer.close()


def preview_cost(model: str | None) -> None:
    """What a slider move costs the live preview on the SrTiO3 file (no network, no Qt)."""
    from napari_atomseg import read_image
    from napari_atomseg.atoms.find import heatmap_to_atoms
    from napari_atomseg.atoms.heatmap import predict_heatmap
    from napari_atomseg.atoms.labels import column_labels

    image, cal = read_image(DATA / "formats" / "openNCEM" / "16_STOimage.emi")
    result = predict_heatmap(image, cal.pixel_size_nm, model or "default", threads=1)

    def best_of_3(fn: Any) -> tuple[float, Any]:
        times, out = [], None
        for _ in range(3):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    t0 = time.perf_counter()
    found = heatmap_to_atoms(result)
    print(f"preview: first post-processing (joint evidence fit) {time.perf_counter() - t0:.3f} s")
    for refine in ("gaussian", "com", "none"):
        seconds, found = best_of_3(lambda r=refine: heatmap_to_atoms(result, refine=r))
        print(f"preview: refine={refine} {seconds:.3f} s, {len(found)} columns")
    positions = found[["y_px", "x_px"]].to_numpy()
    radius = 0.5 * np.nanmedian(found["nn_spacing_px"])
    seconds, _ = best_of_3(lambda: column_labels(result.heatmap, positions, max_radius_px=radius))
    print(f"preview: column labels {seconds:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="*", default=["pt", "sto", "graphene", "simulate", "finetune"],
        choices=["pt", "sto", "graphene", "simulate", "finetune"],
    )  # fmt: skip
    parser.add_argument("--atoms-model", default=None)
    parser.add_argument(
        "--pt-threshold", type=float, default=None, help="default: the model card's"
    )
    parser.add_argument(
        "--thread-check", action="store_true",
        help="only compare the network time in the widget's worker with a direct call",
    )  # fmt: skip
    parser.add_argument(
        "--preview-cost", action="store_true",
        help="only time the live preview's post-processing on the SrTiO3 file (1 thread)",
    )  # fmt: skip
    parser.add_argument("--segment-model", default=None)
    parser.add_argument(
        "--finetune-steps", type=int, default=None, help="default: the widget's (recipe's)"
    )
    args = parser.parse_args()
    if args.thread_check:
        thread_check(args.atoms_model)
        return
    if args.preview_cost:
        preview_cost(args.atoms_model)
        return
    if "pt" in args.only:
        shot_pt(args.atoms_model, args.pt_threshold)
    if "sto" in args.only:
        shot_sto(args.atoms_model)
    if "graphene" in args.only:
        shot_graphene(args.segment_model)
    if "simulate" in args.only:
        shot_simulate()
    if "finetune" in args.only:
        shot_finetune(args.finetune_steps)


if __name__ == "__main__":
    main()
