"""What a person runs: the edgeseg command (cli), the offline demo, the video pipeline (process_video), progress
bars, seeded synthetic scenes and `edgeseg benchmark`."""
