"""The outside world: the DPI (EHR) reader and its synthetic twin, the DMP client and its mock."""
