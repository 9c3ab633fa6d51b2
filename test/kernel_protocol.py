"""The Jupyter project's kernel test suite (jupyter_kernel_test) against the lab's kernel.

Run by test/kernel.test.ts with Debian's /usr/bin/python3 and JUPYTER_PATH pointing at the
project's jupyter/ folder (absolute). By hand:

    JUPYTER_PATH=$PWD/jupyter /usr/bin/python3 test/kernel_protocol.py -v

LAB_KERNEL picks another kernelspec name (the test uses it to run the same suite against
tslab as shipped, which must fail). clear_output, pager and history stay skipped: tslab has
none of them.
"""

import os
import sys
import tempfile
import unittest

try:
    import jupyter_kernel_test
    from jupyter_client.manager import start_new_kernel
except ImportError as e:  # pragma: no cover - depends on the machine
    print(
        f"jupyter_kernel_test is not importable ({e}): install Debian's "
        "python3-jupyter-kernel-test (apt-get install python3-jupyter-kernel-test) "
        "and run this with /usr/bin/python3",
        file=sys.stderr,
    )
    sys.exit(3)

# A 1x1 red PNG.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


class LabKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = os.environ.get("LAB_KERNEL", "tslab")
    language_name = "typescript"
    file_extension = ".ts"

    code_hello_world = 'console.log("hello, world");'
    code_stderr = 'console.error("to stderr");'

    completion_samples = [
        {"text": "Math.ma", "matches": {"max"}},
        {"text": "const someLongName = 1;\nsomeLong", "matches": {"someLongName"}},
    ]

    complete_code_samples = [
        "1 + 2",
        "const x = 1;",
        "function f(a: number): number {\n  return a + 1;\n}",
        "await Promise.resolve(1)",
    ]
    incomplete_code_samples = [
        "function f(a: number) {",
        "const xs = [1, 2,",
        "if (true) {\n  console.log(1);",
    ]
    invalid_code_samples = [
        "const = ;",
        "let 1x = 2;",
        "1 +* 2",
    ]

    code_generate_error = 'throw new Error("boom");'

    code_execute_result = [
        {"code": "1 + 2", "result": "3"},
        {"code": "const n = 6;\nn * 7", "result": "42"},
        {"code": "[1, 2, 3].map((x) => x * 2)", "result": "[ 2, 4, 6 ]"},
    ]

    code_display_data = [
        {"code": 'import * as tslab from "tslab";\ntslab.display.html("<b>hi</b>");', "mime": "text/html"},
        {
            "code": 'import * as tslab from "tslab";\n'
            f'tslab.display.png(Buffer.from("{PNG_B64}", "base64"));',
            "mime": "image/png",
        },
    ]

    code_inspect_sample = "Math.max"

    @classmethod
    def setUpClass(cls):
        # KernelTests' own setUpClass with the kernel's output in a file: Node puts an
        # inherited pipe in non-blocking mode, and Python's writes to it then lose data.
        cls.kernel_log = tempfile.TemporaryFile()
        cls.km, cls.kc = start_new_kernel(
            kernel_name=cls.kernel_name, stdout=cls.kernel_log, stderr=cls.kernel_log
        )

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.kernel_log.seek(0)
        text = cls.kernel_log.read().decode(errors="replace").strip()
        if text and os.environ.get("LAB_KERNEL_LOG"):
            print(f"kernel output:\n{text[-4000:]}", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
