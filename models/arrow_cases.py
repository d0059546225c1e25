"""Arrow IPC streams the Rust side cannot write itself: compressed ones
(score-server decodes uncompressed streams only and must refuse these with
415) and dictionary deltas (applied; tests/typed.rs compares them with the
same rows as plain strings). Written by pyarrow; run by generate.sh."""

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

# Dictionary deltas: a stream for the mixed-input zoo model whose `city`
# column is dictionary-encoded, its second batch adding words to the
# dictionary (a delta batch), and the same rows with plain strings.
words = [["paris", "lyon", "paris"], ["Москва", "lyon", "köln", "nice"]]
dictionary_type = pa.dictionary(pa.int32(), pa.string())
schema = pa.schema([("age", pa.float32()), ("income", pa.float32()), ("visits", pa.int64()),
                    ("city", dictionary_type), ("plan", pa.string())])


def mixed_batch(i, city):
    n = len(words[i])
    return pa.record_batch([pa.array([30.0 + 5 * j for j in range(n)], pa.float32()),
                            pa.array([20.0 + j for j in range(n)], pa.float32()),
                            pa.array(list(range(n)), pa.int64()), city,
                            pa.array(["free", "pro", "team", "pro"][:n])], schema=schema)


# Each batch's dictionary extends the previous one, so the writer sends
# only the new words as a delta.
seen = []
batches = []
for i, ws in enumerate(words):
    seen += [w for w in ws if w not in seen]
    city = pa.DictionaryArray.from_arrays(pa.array([seen.index(w) for w in ws], pa.int32()),
                                          pa.array(seen))
    batches.append(mixed_batch(i, city))
options = ipc.IpcWriteOptions(emit_dictionary_deltas=True)
with ipc.new_stream(HERE / "dictionary-deltas.arrows", schema, options=options) as w:
    for b in batches:
        w.write_batch(b)
plain_schema = schema.set(3, pa.field("city", pa.string()))
with ipc.new_stream(HERE / "dictionary-deltas-plain.arrows", plain_schema) as w:
    for b in batches:
        w.write_batch(pa.record_batch(
            [b.column(0), b.column(1), b.column(2), b.column(3).cast(pa.string()), b.column(4)],
            schema=plain_schema))
