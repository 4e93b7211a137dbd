"""smartcam: an on-device smart camera — capture, TFLite inference, results — configured in YAML."""

__version__ = "0.1.0"
