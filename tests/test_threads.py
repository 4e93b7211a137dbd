"""`threads: auto`: every core on a small board, one left for the outputs on a bigger one, at most four; the choice
is logged and is what the interpreter gets."""

from __future__ import annotations

import logging
import os

import pytest

from app.model.accelerator import MAX_AUTO_THREADS, auto_threads
from app.pipeline import Pipeline
from conftest import FakeCamera, cat_settings


@pytest.mark.parametrize("cores, outputs_on, threads", [
    (1, True, 1), (2, False, 2), (2, True, 2), (4, False, 4), (4, True, 3), (8, False, MAX_AUTO_THREADS),
    (8, True, MAX_AUTO_THREADS)])
def test_auto_threads_follow_the_cores_and_the_outputs(cores, outputs_on, threads):
    assert auto_threads(cores, outputs_on)[0] == threads


def test_a_pipeline_with_auto_threads_logs_the_choice_and_uses_it(tmp_path, caplog):
    settings = cat_settings(tmp_path, "stages.inference.threads=auto")
    expected, _ = auto_threads(len(os.sched_getaffinity(0)), outputs_on=True)  # cat_settings takes snapshots
    with caplog.at_level(logging.INFO, logger="app.model.runner"):
        pipeline = Pipeline(settings, [], FakeCamera(live=False))
    assert pipeline.model.threads == expected
    assert f"threads auto: {expected} (" in caplog.text


def test_threads_given_as_a_number_are_used_as_given(tmp_path):
    pipeline = Pipeline(cat_settings(tmp_path, "stages.inference.threads=1"), [], FakeCamera(live=False))
    assert pipeline.model.threads == 1
