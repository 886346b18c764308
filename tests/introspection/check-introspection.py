#!/usr/bin/python3
# check-introspection.py: Qlean's introspection hygiene, as a test.
#
#   check-introspection.py BUILD_ROOT GIR_TARGET GIR_FILE HEADER...
#
# 1. Re-runs the exact g-ir-scanner command that ninja runs for
#    GIR_TARGET (read back with `ninja -t commands`, so it cannot drift
#    from lib/meson.build), writing to a scratch file, and fails on any
#    warning it prints. The build's own run cannot be checked instead:
#    ninja prints a command's output once, and a build that was already
#    up to date prints nothing.
# 2. Fails when a function that a public header exports (after
#    QLEAN_AVAILABLE_IN_0_1) is missing from GIR_FILE: the scanner never
#    saw it, so it has no binding and no documentation.
# 3. Fails when a public symbol in GIR_FILE has no gi-docgen comment, or
#    a parameter or return value of one is undocumented.
#
# SPDX-License-Identifier: MIT

import os
import re
import shlex
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

CORE = '{http://www.gtk.org/introspection/core/1.0}'
C = '{http://www.gtk.org/introspection/c/1.0}'
GLIB = '{http://www.gtk.org/introspection/glib/1.0}'

problems = []


def scanner_warnings(build_root, target):
    commands = subprocess.run([os.environ.get('NINJA', 'ninja'), '-C', build_root, '-t', 'commands', target],
                              check=True, capture_output=True, text=True).stdout
    lines = [l for l in commands.splitlines() if 'g-ir-scanner' in l]
    if not lines:
        problems.append(f'ninja has no g-ir-scanner command for {target}; '
                        'did lib/meson.build change how the GIR is made?')
        return
    argv = shlex.split(lines[-1])
    if '--output' not in argv:
        problems.append(f'cannot find --output in the scanner command: {lines[-1]}')
        return
    with tempfile.TemporaryDirectory(prefix='gir-check-', dir=build_root) as scratch:
        argv[argv.index('--output') + 1] = os.path.join(scratch, 'check.gir')
        # The scanner compiles and links a dumper in its working directory.
        run = subprocess.run(argv, cwd=build_root, capture_output=True, text=True)
    output = run.stdout + run.stderr
    if run.returncode != 0:
        problems.append(f'g-ir-scanner failed with status {run.returncode}:\n{output}')
        return
    for line in output.splitlines():
        if re.search(r'warning', line, re.IGNORECASE):
            problems.append('g-ir-scanner: ' + line)


def exported_functions(headers):
    names = set()
    for header in headers:
        text = open(header, encoding='utf-8').read()
        # A declaration after the export macro: "TYPE *name (" possibly
        # over several lines; G_DECLARE_* macros declare get_type only.
        for m in re.finditer(r'QLEAN_AVAILABLE_IN_\w+\s+([^;]*?)\(', text, re.S):
            decl = m.group(1)
            d = re.match(r'G_DECLARE_\w+\s*$', decl.strip())
            if d:
                continue
            words = re.findall(r'\w+', decl)
            if words:
                names.add(words[-1])
    return names


def has_doc(element):
    return element.find(CORE + 'doc') is not None


def check_callable(element, what):
    documented = has_doc(element)
    ret = element.find(CORE + 'return-value')
    void = True
    if ret is not None:
        rtype = ret.find(CORE + 'type')
        void = rtype is not None and rtype.get('name') == 'none'
        if not void and has_doc(ret):
            documented = True
    if not documented:
        problems.append(f'{what}: no documentation comment')
        return
    if not void and not has_doc(ret):
        problems.append(f'{what}: return value undocumented')
    params = element.find(CORE + 'parameters')
    if params is not None:
        for p in params:
            if not has_doc(p):
                problems.append(f'{what}: parameter {p.get("name")} undocumented')


def walk(container, prefix):
    for el in container:
        tag = el.tag
        name = el.get(C + 'identifier') or el.get(C + 'type') or el.get('name')
        what = f'{prefix}{name}'
        if tag in (CORE + 'function', CORE + 'method', CORE + 'constructor'):
            check_callable(el, what)
        elif tag in (GLIB + 'signal', CORE + 'callback'):
            check_callable(el, f'{prefix}::{el.get("name")}' if tag == GLIB + 'signal' else what)
        elif tag in (CORE + 'property',):
            if not has_doc(el):
                problems.append(f'{prefix}:{el.get("name")}: property undocumented')
        elif tag in (CORE + 'constant', CORE + 'alias'):
            if not has_doc(el):
                problems.append(f'{what}: no documentation comment')
        elif tag in (CORE + 'class', CORE + 'interface', CORE + 'record',
                     CORE + 'enumeration', CORE + 'bitfield', CORE + 'union'):
            if el.get(GLIB + 'is-gtype-struct-for'):
                continue
            if not has_doc(el):
                problems.append(f'{what}: type undocumented')
            if tag in (CORE + 'enumeration', CORE + 'bitfield'):
                for member in el.findall(CORE + 'member'):
                    if not has_doc(member):
                        problems.append(f'{member.get(C + "identifier")}: member undocumented')
            walk(el, (el.get(C + 'type') or name) + '.')


def main():
    build_root, target, gir, *headers = sys.argv[1:]
    scanner_warnings(build_root, target)

    tree = ET.parse(gir)
    namespace = tree.getroot().find(CORE + 'namespace')
    in_gir = {el.get(C + 'identifier') for el in namespace.iter() if el.get(C + 'identifier')}
    # A registered type's get_type function is an attribute of the type.
    in_gir |= {el.get(GLIB + 'get-type') for el in namespace.iter() if el.get(GLIB + 'get-type')}
    for name in sorted(exported_functions(headers) - in_gir):
        problems.append(f'{name}: exported by a public header but not in {os.path.basename(gir)}')
    walk(namespace, '')

    for p in problems:
        print(p)
    if problems:
        print(f'{len(problems)} introspection problem(s)')
        return 1
    print(f'{os.path.basename(gir)}: no scanner warning, every public symbol documented')
    return 0


if __name__ == '__main__':
    sys.exit(main())
