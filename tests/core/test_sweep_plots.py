"""osrm_core.sweep_plots: the task-count plot with and without curves."""

import warnings

from osrm_core.sweep_plots import plot_tasks

CURVE = [{"arm": a, "n": n, "normalised": 100.0 - 5 * n} for a in ("lora", "osrm") for n in (2, 3)]


def test_plot_tasks_without_curves_writes_a_plot_that_says_so(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels" warning was the old behaviour
        plot_tasks({}, tmp_path / "none.png")
        plot_tasks({"task_arithmetic": []}, tmp_path / "empty.png")
        plot_tasks({"task_arithmetic": CURVE}, tmp_path / "curve.png")
    sizes = {p.name: p.stat().st_size for p in tmp_path.glob("*.png")}
    assert set(sizes) == {"none.png", "empty.png", "curve.png"} and all(v > 1000 for v in sizes.values())
    assert sizes["curve.png"] != sizes["empty.png"]
