#!/usr/bin/python3
# check-readme.py: the README's examples are copy-pasteable. Every ```c
# block builds and links against the built library as a user's program
# does (<qlean/...> headers, libqlean-1); every ```python block parses
# and uses only names the typelib has.
#
#   check-readme.py README BUILD_ROOT INCLUDE_DIR
#
# SPDX-License-Identifier: MIT

import os
import re
import subprocess
import sys
import tempfile

readme, build_root, include_dir = sys.argv[1:]
text = open(readme, encoding="utf-8").read()
blocks = re.findall(r"^```(\w+)\n(.*?)^```", text, re.S | re.M)

env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(build_root, "meson-uninstalled"))
flags = subprocess.run(["pkg-config", "--cflags", "--libs", "qlean-1"], env=env,
                       check=True, capture_output=True, text=True).stdout.split()

failures = 0
checked = 0
with tempfile.TemporaryDirectory(prefix="qlean-readme-") as scratch:
    for n, (lang, code) in enumerate(blocks):
        if lang == "c":
            source = os.path.join(scratch, f"block{n}.c")
            open(source, "w").write(code)
            run = subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-o", source[:-2], source,
                                  "-I" + include_dir] + flags, capture_output=True, text=True)
            if run.returncode != 0:
                print(f"README C block {n} does not build:\n{code}\n{run.stderr}")
                failures += 1
            checked += 1
        elif lang == "python":
            try:
                compile(code, f"README block {n}", "exec")
            except SyntaxError as error:
                print(f"README Python block {n} does not parse: {error}")
                failures += 1
                continue
            # Names used on Qlean must exist in the typelib.
            probe = ("import gi\ngi.require_version('Qlean', '1.0')\n"
                     "from gi.repository import Qlean\n")
            for name in sorted(set(re.findall(r"\bQlean\.(\w+(?:\.\w+)?)", code))):
                probe += f"Qlean.{name}\n"
            run = subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True, text=True,
                                 env=dict(os.environ, GI_TYPELIB_PATH=os.path.join(build_root, "lib"),
                                          LD_LIBRARY_PATH=os.path.join(build_root, "lib")))
            if run.returncode != 0:
                print(f"README Python block {n} uses names the typelib lacks:\n{run.stderr}")
                failures += 1
            checked += 1

if failures:
    print(f"{failures} of {checked} README examples are broken")
    sys.exit(1)
print(f"the README's {checked} C and Python examples build")
