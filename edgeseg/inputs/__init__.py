"""Inputs: whatever a user gives (files, folders, globs, arrays, videos, cameras, streams, pushed frames) read as
one iterator of `Frame` (source.open_source), then letterboxed into the network's input batch (preprocess)."""
