"""Teach: objects named, or declared not what the detector thinks, from one photo on the device. The gallery of
taught examples (gallery), matching an embedding against it (matching), a run's verdicts on its detections and
tracks (verdicts, built from the settings by run, the gallery watched while it runs: watch), making examples from
files for `python -m app teach` (examples, commands), from the live page's tracks and snapshots (live,
from_snapshot), and the recent tracks' embeddings for look-alikes (recent, similar)."""
