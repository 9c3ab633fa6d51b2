"""Sends a list of requests to a kernel and prints every reply with its iopub outputs, as JSON.

Used by test/kernel.test.ts for the targeted checks of jupyter/kernel.js. Run with Debian's
/usr/bin/python3 and JUPYTER_PATH set to the project's (absolute) jupyter/ folder:

    echo '[{"type": "execute", "code": "1 + 2"}]' | \
      JUPYTER_PATH=$PWD/jupyter /usr/bin/python3 test/kernel_probe.py [kernel name]

Request types: execute (code), is_complete (code), kernel_info, comm_info. Output: a JSON
list, one `{"reply": {msg_type, content}, "outputs": [{msg_type, content}, ...]}` per
request, where outputs are the iopub messages between the request's busy and idle status.
"""

import json
import sys
import tempfile
import time
from queue import Empty

from jupyter_client.manager import start_new_kernel

TIMEOUT = 60


def strip(msg):
    return {"msg_type": msg["header"]["msg_type"], "content": msg["content"]}


def send(kc, req):
    kind = req["type"]
    if kind == "execute":
        return kc.execute(req["code"], silent=req.get("silent", False))
    if kind == "is_complete":
        return kc.is_complete(req["code"])
    if kind == "kernel_info":
        return kc.kernel_info()
    if kind == "comm_info":
        return kc.comm_info()
    raise ValueError(f"unknown request type {kind!r}")


def outputs_of(kc, msg_id):
    """iopub messages of one request, up to its idle status."""
    out = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["header"]["msg_type"] == "status":
            if msg["content"]["execution_state"] == "idle":
                return out
            continue
        out.append(strip(msg))
    raise TimeoutError(f"no idle status for {msg_id} within {TIMEOUT} s")


def main():
    kernel = sys.argv[1] if len(sys.argv) > 1 else "tslab"
    requests = json.load(sys.stdin)
    # The kernel writes to a file, not to our stdout: Node puts an inherited pipe in
    # non-blocking mode, and Python's writes to it then lose data.
    log = tempfile.TemporaryFile()
    km, kc = start_new_kernel(kernel_name=kernel, startup_timeout=TIMEOUT, stdout=log, stderr=log)
    results = []
    ok = False
    try:
        for req in requests:
            msg_id = send(kc, req)
            while True:
                reply = kc.get_shell_msg(timeout=TIMEOUT)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            results.append({"reply": strip(reply), "outputs": outputs_of(kc, msg_id)})
            if reply["content"].get("status") == "error":
                time.sleep(0.4)  # tslab aborts requests queued within 200 ms of an error
        ok = True
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        if not ok:
            log.seek(0)
            sys.stderr.write("kernel output:\n" + log.read().decode(errors="replace")[-4000:])
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
