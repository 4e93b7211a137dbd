"""`python -m app bench`: the instrument every performance claim is measured with.

One invocation compares, on the same model, source and thread count, alternated and repeated:
- `limit`: `invoke()` alone on a fixed input, the ceiling;
- `loop`: the one-thread read → convert → resize → set_tensor → invoke → decode loop every example copies;
- `pipeline`: smartcam's three lanes, as `run` builds them;
the last two with the outputs off and on. Each run is a fresh child process (`app.bench.child`), so its CPU time,
peak memory and time to the first result are its own. `app.bench.report` turns the runs into the table, the
JSON and the plot.
"""
