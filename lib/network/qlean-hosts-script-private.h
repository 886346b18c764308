/* qlean-hosts-script-private.h: Qlean's lines in a guest's /etc/hosts
 *
 * SPDX-License-Identifier: MIT
 *
 * Shell text shared by the library (which lists a network's machines
 * when one starts) and the `qlean` program (which lists the machines of
 * a `start --network` network in all of them); the program links only
 * the library's public API, so this is a header of strings.
 *
 * The lines Qlean adds end in "# qlean"; a new list replaces them and
 * leaves the image's own lines alone. The script's arguments ("$@") are
 * the "ADDRESS NAME" lines. Builtins only, not grep: every process costs
 * tens of milliseconds of the guest's CPU on a fresh TCG translation
 * cache.
 */

#pragma once

/* Private to the library, and to the CLI, which shares this file. */
#if !defined (QLEAN_COMPILATION) && !defined (QLEAN_TOOL_COMPILATION)
#error "qlean-hosts-script-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

/* Sets $others to the lines of /etc/hosts that are not Qlean's. */
#define QLEAN_HOSTS_KEEP_OTHERS \
  "others=\n" \
  "if [ -f /etc/hosts ]; then\n" \
  "  while IFS= read -r l || [ -n \"$l\" ]; do\n" \
  "    case $l in *' # qlean') ;; *) others=\"$others$l\n\" ;; esac\n" \
  "  done < /etc/hosts\n" \
  "fi\n"

/* Prints the new file: the others, then ours; redirect it. */
#define QLEAN_HOSTS_PRINT \
  "{ printf '%s' \"$others\"; printf '%s # qlean\\n' \"$@\"; }"
