"""Whatever bytes config.yaml or a pipeline file holds, `validate` answers with exit 0 or 2 and one line per
problem: never a traceback, never an exception out of the CLI. Property-based (hypothesis): raw bytes, documents
generated from the real keys, and the shipped files mutated."""

from __future__ import annotations

import io
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cli import main
from app.config import PROJECT_DIR

SHIPPED_CONFIG = (PROJECT_DIR / "config.yaml").read_bytes()
SHIPPED_PIPELINE = (PROJECT_DIR / "pipelines" / "face.yaml").read_bytes()
KEYS = ["camera", "name", "source", "width", "height", "fps", "mqtt", "http", "bind", "token", "port", "stages",
        "preprocess", "inference", "postprocess", "filter", "publish", "overlay", "labels", "model", "threads",
        "anchors", "strides", "description", "snapshots", "webhooks", "urls", "enabled", "${X}", "<<"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["${HOME}", "${NOPE}", "${cred:x}", "pattern", "auto"]))
DOCUMENTS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)), max_leaves=40)


def validate(config: bytes | None = None, pipeline: bytes | None = None) -> None:
    """Run `validate` on these files in-process; fail on anything but exit 0/2 with `error:`/`warning:` lines."""
    with tempfile.TemporaryDirectory() as folder:
        config_path, pipeline_path = Path(folder) / "config.yaml", Path(folder) / "p.yaml"
        config_path.write_bytes(SHIPPED_CONFIG if config is None else config)
        pipeline_path.write_bytes(SHIPPED_PIPELINE if pipeline is None else pipeline)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["validate", "--config", str(config_path), "--pipeline", str(pipeline_path)])
    lines = err.getvalue().splitlines()
    assert code in (0, 2), (code, err.getvalue())
    assert (code == 0) == (out.getvalue() == "ok\n"), out.getvalue()
    assert all(line.startswith(("error: ", "warning: ")) or " INFO " in line or " DEBUG " in line
               for line in lines), err.getvalue()
    assert code == 0 or any(line.startswith("error: ") for line in lines)


def mutated(original: bytes, data: st.DataObject) -> bytes:
    """`original` with a few bytes replaced, inserted or deleted at drawn places."""
    text = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        where = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = data.draw(st.sampled_from(b":-[]{}&*!|>'\"#%@`,? \n\t\x00\xff" + b"abc019"))
        if action == "insert" or not text:
            text.insert(where, byte)
        elif action == "replace":
            text[min(where, len(text) - 1)] = byte
        else:
            del text[min(where, len(text) - 1)]
    return bytes(text)


@settings(max_examples=700, deadline=None)
@given(st.binary(max_size=3000), st.booleans())
def test_raw_bytes_are_answered(data, as_pipeline):
    validate(pipeline=data) if as_pipeline else validate(config=data)


@settings(max_examples=700, deadline=None)
@given(DOCUMENTS, st.booleans())
def test_generated_documents_are_answered(document, as_pipeline):
    text = yaml.safe_dump(document, allow_unicode=True).encode()
    validate(pipeline=text) if as_pipeline else validate(config=text)


@settings(max_examples=700, deadline=None)
@given(st.data(), st.booleans())
def test_mutated_shipped_files_are_answered(data, as_pipeline):
    if as_pipeline:
        validate(pipeline=mutated(SHIPPED_PIPELINE, data))
    else:
        validate(config=mutated(SHIPPED_CONFIG, data))
