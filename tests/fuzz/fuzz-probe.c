/* fuzz-probe.c: the smallest libFuzzer target; tests/fuzz/meson.build
 * builds it to learn whether clang can build fuzzers at all.
 *
 * SPDX-License-Identifier: MIT
 */

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  return 0;
}
