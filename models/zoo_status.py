#!/usr/bin/env python3
"""Tries every models/zoo/ export on a real score-server and writes the
status table docs/models.md: does it load, and for each output the max abs
difference against onnxruntime's reference (labels must be identical).

    python3 models/zoo_status.py SCORE_SERVER_BINARY > docs/models.md

(`models/zoo.sh` builds the exports and runs this.) With onnxruntime's
library in ORT_DYLIB_PATH each server runs `--engine auto` and the table
says which engine it kept and the speed ratio it measured (a release
binary, one worker thread: the ratios are only meaningful so). Standard library only,
except for the mixed-input exports (`mixed-*`, fed by name), whose bodies
are Arrow IPC streams written with pyarrow (the zoo venv has it).
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from array import array

ZOO = pathlib.Path(__file__).resolve().parent / "zoo"


def start(binary, path):
    fd, log_path = tempfile.mkstemp(suffix=".log")
    os.close(fd)
    log = open(log_path, "ab")  # the child appends; we read by path
    env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0", NO_COLOR="1")
    engine = ["--engine", "auto"] if os.environ.get("ORT_DYLIB_PATH") else []
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--workers", "1",
                             "--drain-delay", "0s", "--model", f"m={path}"] + engine,
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while True:
        exited = proc.poll() is not None
        text = pathlib.Path(log_path).read_text(errors="replace")
        found = re.search(r"listening address=(127\.0\.0\.1:\d+)", text)
        if found:
            log.close()
            os.unlink(log_path)
            return proc, f"http://{found.group(1)}", None
        if exited or time.monotonic() > deadline:
            log.close()
            os.unlink(log_path)
            proc.kill()
            proc.wait()
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            # anyhow prints "Error: ...", "Caused by:", then the cause.
            after = lines[lines.index("Caused by:") + 1:] if "Caused by:" in lines else lines[-1:]
            return None, None, " ".join(after) or "no output"


def arrow_body(inputs):
    """An Arrow IPC stream with one column per input, named after it."""
    import pyarrow as pa

    types = {"float32": pa.float32(), "int64": pa.int64(), "string": pa.string()}
    table = pa.table({name: pa.array([float("nan") if v is None else v for v in i["values"]],
                                     type=types[i["dtype"]])
                      for name, i in inputs.items()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def score(url, output, ref):
    if "inputs" in ref:
        body, content_type = arrow_body(ref["inputs"]), "application/vnd.apache.arrow.stream"
    else:
        nan = float("nan")
        rows = ref["input"]
        body = array("f", [nan if v is None else v for row in rows for v in row]).tobytes()
        content_type = "application/octet-stream"
    request = urllib.request.Request(f"{url}/score?output={output}", data=body, method="PUT",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            out = array("f")
            out.frombytes(r.read())
            return list(out), None
    except urllib.error.HTTPError as e:
        return None, f"HTTP {e.code}: {json.loads(e.read() or b'{}').get('error', '')}"


def engine_cell(served):
    """The engine auto kept and its measured onnxruntime/tract speed."""
    engine, reason = served.get("engine", "tract"), served.get("engine_reason", "")
    found = re.search(r"speed (.*) \(one thread", reason)
    if found:
        return f"{engine}; onnxruntime/tract {found.group(1)}"
    return f"{engine} ({reason})" if reason else engine


def check(url, ref):
    served = json.load(urllib.request.urlopen(f"{url}/models/m", timeout=10))
    names = {o["name"] for o in served["outputs"]}
    classes_of = {o["name"]: o.get("classes") for o in served["outputs"]}
    results = []
    for name, expected in ref["outputs"].items():
        flat = [v for row in expected["values"] for v in row]
        if name not in names:
            results.append(f"`{name}`: not served")
            continue
        got, error = score(url, name, ref)
        if error:
            results.append(f"`{name}`: {error}")
        elif len(got) != len(flat):
            results.append(f"`{name}`: {len(got)} values, expected {len(flat)}")
        elif expected["dtype"] == "string":
            # Served as the class index; the names are in the metadata.
            classes = classes_of.get(name) or []
            index = [classes.index(v) if v in classes else None for v in flat]
            wrong = sum(1 for a, b in zip(got, index) if a != b)
            results.append(f"`{name}`: string labels served as class index, " +
                           ("identical" if not wrong else f"**{wrong}/{len(flat)} wrong**"))
        elif expected["dtype"].startswith("int"):
            wrong = sum(1 for a, b in zip(got, flat) if a != b)
            results.append(f"`{name}`: labels " + ("identical" if not wrong
                                                  else f"**{wrong}/{len(flat)} wrong**"))
        else:
            diff = max((abs(a - b) for a, b in zip(got, flat)), default=0.0)
            mark = "" if diff <= 1e-5 else " **over 1e-5**"
            results.append(f"`{name}`: max abs diff {diff:.1e}{mark}")
    return results, engine_cell(served)


def main():
    binary = sys.argv[1]
    print("# Model exports: what score-server loads\n")
    print("Generated by `models/zoo.sh` (exports: `models/zoo.py`; this table:")
    print("`models/zoo_status.py`). Each export is loaded by a real score-server")
    print("and every output is compared with onnxruntime on 16 rows: labels must")
    print("be identical, probabilities and values within 1e-5. The `mixed-*` exports")
    print("take several typed inputs (numbers and string categories) and are fed")
    print("an Arrow IPC body with one column per input.")
    auto = bool(os.environ.get("ORT_DYLIB_PATH"))
    if auto:
        print("\nEach server ran `--engine auto` (release build, one worker): the")
        print("engine column is the engine it kept and onnxruntime's speed over")
        print("tract's that it measured at 16 and 1,024 rows a call, one thread each")
        print("(onnxruntime is kept at >= 1.05x). Outputs are compared as served by")
        print("the engine kept.")
    print()
    rows, matching = [], 0
    for path in sorted(ZOO.glob("*.onnx")):
        ref = json.loads((ZOO / f"{path.stem}.reference.json").read_text())
        proc, url, error = start(binary, path)
        if proc is None:
            error = re.sub(r"\x1b\[[0-9;]*m", "", error).replace("|", "\\|")
            rows.append(f"| {path.stem} | {ref['source']} | no | | {error[:300]} |")
            continue
        try:
            results, engine = check(url, ref)
        finally:
            proc.terminate()
            proc.wait()
        ok = all("identical" in r or ("max abs diff" in r and "**" not in r) for r in results)
        matching += ok
        rows.append(f"| {path.stem} | {ref['source']} | yes | {engine} | {'<br>'.join(results)} |")
    print(f"**{matching} of {len(rows)} exports load and match onnxruntime on every output.**\n")
    print("| model | exported from | loads | engine | outputs |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
