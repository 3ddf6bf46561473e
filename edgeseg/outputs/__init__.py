"""What users keep from Results: cut-outs (isolate), outlines (contours), drawings (annotate), COCO records (coco),
and the files and videos that hold them, written atomically (files, video_writer)."""
