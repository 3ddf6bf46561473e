"""Results.to_records(): flat rows for tables (Parquet, JSON lines) that integrations write, masks as COCO RLE."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeseg import Segmenter


def test_to_records_are_flat_rows_that_decode_to_the_masks(shapes_onnx, val_images):
    pycocotools = pytest.importorskip("pycocotools.mask")
    seg = Segmenter(shapes_onnx)
    (r,) = seg.predict(str(val_images[0]))
    rows = r.to_records(frame=7)
    assert len(rows) == len(r) > 0 and json.loads(json.dumps(rows)) == rows
    for i, row in enumerate(rows):
        assert row["source"] == r.path and row["frame"] == 7 and row["object"] == i and row["track_id"] is None
        assert [row[k] for k in ("x1", "y1", "x2", "y2")] == r.boxes.xyxy[i].tolist()
        assert row["class_name"] == r.names[row["class_id"]] and row["score"] == float(r.boxes.conf[i])
        rle = {"size": [row["mask_height"], row["mask_width"]], "counts": row["mask_counts"]}
        assert np.array_equal(pycocotools.decode(rle), r.masks.dense(i))
        assert all(isinstance(v, (str, int, float, type(None))) for v in row.values())
    tracked = seg.track(str(val_images[0]))[0].to_records()
    assert all(isinstance(row["track_id"], int) and isinstance(row["track_class"], int) for row in tracked)
    (small,) = Segmenter(shapes_onnx, retina_masks=False).predict(str(val_images[0]))
    assert [row["mask_height"] for row in small.to_records()] == [r.orig_shape[0]] * len(small)
