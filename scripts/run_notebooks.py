"""Execute notebooks through the project-local tslab kernel with nbclient.

Called by scripts/run-notebooks.ts (which sets JUPYTER_PATH, checks the notebooks are
clean and picks the files); run it with Debian's /usr/bin/python3, whose nbclient and
nbconvert are the ones the lab is tested with.

    run_notebooks.py --out out/notebooks [--timeout 1800] notebooks/a.ipynb ...
    run_notebooks.py --check    # only check the Python packages and the tslab kernelspec

For each notebook: execute it with the kernel's cwd set to the notebook's folder (so
`./lib/...` imports resolve through the notebooks/lib symlink), write the executed copy
and an HTML export to --out (atomically), and print the wall time. On a failing cell,
print the cell, its error output (the lab's kernel, jupyter/kernel.js, sends `ename`,
`evalue` and the traceback) and its stderr (where tslab as shipped put the message).

A missing Python package stops the runner with one line naming the Debian package
(exit code 3); lines it prints from cells and errors are clipped to LINE_MAX characters.
"""

import argparse
import importlib
import os
import sys
import tempfile
import time

# Debian package of each module the runner imports (`bash scripts/install-system.sh`).
PACKAGES = {
    "nbformat": "python3-nbformat",
    "nbclient": "python3-nbclient",
    "nbconvert": "python3-nbconvert",
    "jupyter_client": "python3-jupyter-client",
}
EXIT_MISSING = 3
LINE_MAX = 500


def require_packages():
    """One line naming every missing Debian package, then exit, instead of a traceback."""
    missing = []
    for module, package in PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError as e:  # absent, or present but broken (then say why)
            why = "" if type(e) is ModuleNotFoundError else f": {type(e).__name__}: {e}".splitlines()[0]
            missing.append((module, package, why))
    if missing:
        modules = ", ".join(m + why for m, _, why in missing)
        packages = " ".join(p for _, p, _ in missing)
        print(clip(f"notebook runner: {sys.executable} cannot import {modules}; install the Debian "
                   f"package(s) {packages}: bash scripts/install-system.sh"), file=sys.stderr)
        sys.exit(EXIT_MISSING)


def clip(line, width=LINE_MAX):
    return line if len(line) <= width else f"{line[:width]}... ({len(line) - width} more chars)"


def clip_lines(text):
    """Every line cut to LINE_MAX: a kernel's stderr can hold a minified bundle's source line."""
    return "\n".join(clip(line) for line in text.splitlines())


require_packages()

import nbformat  # noqa: E402
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402
from nbconvert import HTMLExporter  # noqa: E402

KERNEL = "tslab"
# tslab's TypeScript watcher throws this when a file of the program (e.g. lib/*.ts)
# changes on disk while the kernel runs; the notebook itself is fine, so run it again.
TSLAB_WATCH_RACE = "Unexpected pending rebuildTimer"
UMASK = os.umask(0o022)
os.umask(UMASK)


def write_atomic(path, text):
    """Temp file in the same folder, then rename: readers never see half a notebook."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def stream_text(cell, name):
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == name
    )


def error_text(cell):
    """Error outputs, for kernels that do fill them (tslab leaves them empty)."""
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            parts.append(f"{o.get('ename', '')}: {o.get('evalue', '')}".strip(": "))
            parts.extend(o.get("traceback", []))
    return "\n".join(p for p in parts if p)


def report_failure(path, failure):
    cell_index, cell = failure
    rule = "-" * 72
    print(f"\nFAILED {path}: cell {cell_index}", file=sys.stderr)
    print(f"{rule}\ncell {cell_index} source:\n{rule}\n{clip_lines(cell.source)}", file=sys.stderr)
    stderr = clip_lines(stream_text(cell, "stderr").rstrip()) or "(no stderr output)"
    print(f"{rule}\ncell {cell_index} stderr:\n{rule}\n{stderr}", file=sys.stderr)
    extra = clip_lines(error_text(cell))
    if extra:
        print(f"{rule}\ncell {cell_index} error:\n{rule}\n{extra}", file=sys.stderr)
    print(rule, file=sys.stderr)


def execute(path, timeout):
    """Runs one notebook; returns (notebook, failure) with failure = (index, cell) or None."""
    nb = nbformat.read(path, as_version=4)
    failures = []

    def on_cell_error(cell, cell_index, execute_reply):
        failures.append((cell_index, cell))

    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=timeout,
        startup_timeout=120,
        on_cell_error=on_cell_error,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
    )
    try:
        client.execute()
    except CellExecutionError:
        if not failures:
            raise
    return nb, (failures[0] if failures else None)


def execute_with_retry(path, timeout):
    nb, failure = execute(path, timeout)
    if failure and TSLAB_WATCH_RACE in stream_text(failure[1], "stderr"):
        print(f"{path}: source changed during the run ({TSLAB_WATCH_RACE}); rerunning once")
        nb, failure = execute(path, timeout)
    return nb, failure


def run_one(path, out_dir, timeout):
    name = os.path.splitext(os.path.basename(path))[0]
    start = time.monotonic()
    try:
        nb, failure = execute_with_retry(path, timeout)
    except Exception as e:  # kernel died, timed out, missing kernelspec, ...
        print(clip_lines(f"FAILED {path}: {type(e).__name__}: {e}"), file=sys.stderr)
        return False
    elapsed = time.monotonic() - start
    ipynb = os.path.join(out_dir, name + ".ipynb")
    # The partial notebook is written on failure too: it shows what ran before the error.
    write_atomic(ipynb, nbformat.writes(nb))
    if failure:
        report_failure(path, failure)
        print(f"{name}: FAILED after {elapsed:.1f} s (partial run in {ipynb})", flush=True)
        return False
    html, _ = HTMLExporter().from_notebook_node(nb)
    write_atomic(os.path.join(out_dir, name + ".html"), html)
    print(f"{name}: ok in {elapsed:.1f} s -> {ipynb}", flush=True)
    return True


def check_kernel():
    """The tslab kernelspec must be on JUPYTER_PATH (run-notebooks.ts puts jupyter/ there)."""
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        print(f"notebook runner: no Jupyter kernel '{KERNEL}' on JUPYTER_PATH="
              f"{os.environ.get('JUPYTER_PATH', '')!r} (npm run notebooks sets it to jupyter/)",
              file=sys.stderr)
        return False
    print(f"notebook runner: {sys.executable}, kernel {KERNEL} in {spec.resource_dir}")
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check packages and kernel, run nothing")
    parser.add_argument("--out", help="folder for executed .ipynb and .html")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("notebooks", nargs="*")
    args = parser.parse_args()
    if args.check:
        return 0 if check_kernel() else 1
    if not args.out or not args.notebooks:
        parser.error("--out and at least one notebook are required")
    os.makedirs(args.out, exist_ok=True)
    failed = [p for p in args.notebooks if not run_one(p, args.out, args.timeout)]
    if failed:
        print(f"\n{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
