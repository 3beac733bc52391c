"""Data page figures: SVG text carrying the numbers' labels, and an explicit empty state."""

from mlcore.ml.plots.data import feedback_growth_svg, split_class_bars_svg


def test_split_class_bars_label_classes_splits_and_totals():
    svg = split_class_bars_svg(
        {"train": {"lung-covid": 7, "lung-normal": 3}, "test": {"lung-covid": 2, "lung-normal": 0}},
        classes=["lung-covid", "lung-normal"], splits=["train", "val", "test"],
        labels={"lung-covid": "COVID-19 pneumonia"},
    )
    assert svg.startswith("<svg") and "COVID-19 pneumonia" in svg and "lung-normal" in svg
    # text is drawn as paths; matplotlib keeps each string in a comment beside them
    assert "<!-- train -->" in svg and "<!-- test -->" in svg
    assert "<!-- val -->" not in svg  # an empty split has no legend entry
    assert "<!--  9 -->" in svg  # the class total printed at the end of its bar


def test_feedback_growth_empty_says_so():
    svg = feedback_growth_svg({}, classes=[])
    assert "no confirmed corrections yet" in svg


def test_feedback_growth_labels_days():
    svg = feedback_growth_svg({"2026-12-01": {"lung-covid": 2}, "2026-12-02": {}},
                              classes=["lung-covid"], labels={"lung-covid": "COVID-19 pneumonia"})
    assert "2026-12-01" in svg and "2026-12-02" in svg and "COVID-19 pneumonia" in svg
