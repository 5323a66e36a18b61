"""Face detection and recognition networks."""
