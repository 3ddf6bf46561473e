"""Thin adapters of the public API to other systems, each an optional extra: `ray` (Ray Data: archives of images and
videos segmented on a cluster; `edgeseg batch`) and `serve` (Ray Serve: an HTTP segmentation pool; `edgeseg serve`).

Nothing here is imported by `import edgeseg`, and these modules import Ray only when they run: `edgeseg --help`
works without it."""
