#!/usr/bin/python3
# whoami.py: boot a throwaway machine, run `whoami` in it, check that it
# says root. The Python port of the first example of the Rust Qlean.
#
# Run it with Debian's /usr/bin/python3 (python3-gi); from a build tree:
#   GI_TYPELIB_PATH=_build/lib LD_LIBRARY_PATH=_build/lib /usr/bin/python3 examples/whoami.py
#
# SPDX-License-Identifier: MIT

import sys

import gi

gi.require_version("Qlean", "1.0")
from gi.repository import Qlean  # noqa: E402

machine = Qlean.Machine.new(None, None)   # minimal image, defaults
machine.spawn(None)
result = machine.exec("whoami", None)
user = result.get_stdout_text().strip()
print(f"{user} (exit status {result.get_exit_status()})")
machine.shutdown(None)

sys.exit(0 if result.success() and user == "root" else 1)
