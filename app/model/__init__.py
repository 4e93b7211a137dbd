"""The model: the only interpreter import (runtime), the accelerator choice and its CPU fallback, the model
manifest and its fetching, and how a model fits the pipeline that uses it. What the inference lane holds."""
