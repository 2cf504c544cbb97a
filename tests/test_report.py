"""The demo report's plots: axis limits that show accuracy differences at their true size."""

from __future__ import annotations

import pytest
from PIL import Image

from edgeshuffle.report import MIN_ACCURACY_SPAN, accuracy_axis_limits, plot_accuracy_latency


@pytest.mark.parametrize("values", [[85.5, 85.9, 85.9], [99.8, 100.0], [62.0, 85.5]])
def test_accuracy_axis_holds_every_value_and_spans_at_least_the_minimum(values):
    low, high = accuracy_axis_limits(values)
    assert low < min(values) and max(values) < high
    assert high - low >= MIN_ACCURACY_SPAN
    # Centred: the margins above and below the values are equal.
    assert (min(values) - low) == pytest.approx(high - max(values))


def test_accuracy_latency_plot_is_written(tmp_path):
    rows = [{"artifact": "float32.tflite", "accuracy": 0.855, "agreement": 1.0, "p50_ms": 0.65},
            {"artifact": "int8.onnx", "accuracy": 0.859, "agreement": 0.98, "p50_ms": 1.18}]
    plot_accuracy_latency(rows, tmp_path / "plot.png")
    with Image.open(tmp_path / "plot.png") as image:
        assert image.format == "PNG" and image.size == (720, 480)  # figsize 6x4 inches at 120 dpi
