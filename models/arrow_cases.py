"""Arrow IPC streams the Rust side cannot write itself: compressed ones
(score-server decodes uncompressed streams only and must refuse these with
415). Written by pyarrow; run by generate.sh."""

import pathlib

import pyarrow as pa
import pyarrow.ipc as ipc

HERE = pathlib.Path(__file__).parent / "arrow"
WIDTH = 100  # logreg's input width

rows = [[float(r * WIDTH + c) / 1000 for c in range(WIDTH)] for r in range(2)]
table = pa.table({"features": pa.array(rows, type=pa.list_(pa.float32()))})
HERE.mkdir(exist_ok=True)
for codec in ["lz4", "zstd"]:
    options = ipc.IpcWriteOptions(compression=codec)
    with ipc.new_stream(HERE / f"compressed-{codec}.arrows", table.schema, options=options) as w:
        w.write_table(table)
