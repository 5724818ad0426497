"""Personal and health identifiers: detection (detect.py) and its evaluation (evaluate.py)."""
