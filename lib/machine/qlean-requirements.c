/* qlean-requirements.c: can this host run machines?
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#include "qlean-arch-private.h"
#include "qlean-host-private.h"
#include "qlean-image-private.h"
#include "qlean-requirements.h"

G_DEFINE_BOXED_TYPE (QleanRequirement, qlean_requirement,
                     qlean_requirement_copy, qlean_requirement_free)

/**
 * qlean_requirement_copy:
 * @requirement: a #QleanRequirement
 *
 * Returns: (transfer full): a copy of @requirement
 *
 * Since: 0.1
 */
QleanRequirement *
qlean_requirement_copy (const QleanRequirement *requirement)
{
  QleanRequirement *copy = g_new0 (QleanRequirement, 1);

  copy->name = g_strdup (requirement->name);
  copy->ok = requirement->ok;
  copy->required = requirement->required;
  copy->detail = g_strdup (requirement->detail);
  copy->hint = g_strdup (requirement->hint);

  return copy;
}

/**
 * qlean_requirement_free:
 * @requirement: (nullable): a #QleanRequirement
 *
 * Frees @requirement.
 *
 * Since: 0.1
 */
void
qlean_requirement_free (QleanRequirement *requirement)
{
  if (requirement == NULL)
    return;

  g_free (requirement->name);
  g_free (requirement->detail);
  g_free (requirement->hint);
  g_free (requirement);
}

static void
add (GPtrArray  *report,
     const char *name,
     gboolean    ok,
     gboolean    required,
     char       *detail,
     const char *package)
{
  QleanRequirement *requirement = g_new0 (QleanRequirement, 1);

  requirement->name = g_strdup (name);
  requirement->ok = ok;
  requirement->required = required;
  requirement->detail = detail;
  requirement->hint = ok || package == NULL ? NULL : qlean_host_install_hint (package);
  g_ptr_array_add (report, requirement);
}

/* Another architecture's minimal image: its inputs are in a sysroot
 * that tools/setup.sh makes, and its qlean-guest is cross-compiled. */
static void
check_foreign_inputs (GPtrArray *report,
                      QleanArch  arch)
{
  const QleanArchInfo *info = qlean_arch_get_info (arch);
  g_auto(QleanMinimalInputs) inputs = { .arch = arch };
  g_autoptr(GError) error = NULL;
  g_autofree char *cross = g_strdup_printf ("%s libc6-dev-%s-cross", info->cross_compiler_package,
                                            info->debian_name);
  QleanRequirement *requirement;
  gboolean ok = qlean_minimal_find_inputs (&inputs, &error);
  /* Else the error message says how to make one by hand. */
  const char *setup = info->sysroot_by_setup ? "tools/setup.sh deps" : NULL;

  add (report, "sysroot", inputs.sysroot != NULL, TRUE,
       inputs.sysroot != NULL ? g_strdup (inputs.sysroot) : g_strdup (error->message), NULL);
  add (report, "kernel", inputs.kernel != NULL && inputs.modules_dir != NULL, TRUE,
       g_strdup (inputs.kernel ? inputs.kernel : _("not found")), NULL);
  add (report, "busybox", inputs.busybox != NULL, TRUE,
       g_strdup (inputs.busybox ? inputs.busybox : _("not found")), NULL);
  add (report, "qemu-ga", inputs.qemu_ga != NULL, TRUE,
       g_strdup (inputs.qemu_ga ? inputs.qemu_ga : _("not found")), NULL);
  if (!ok && inputs.sysroot != NULL && inputs.kernel != NULL && inputs.modules_dir != NULL &&
      inputs.busybox != NULL && inputs.qemu_ga != NULL)
    add (report, "minimal-image", FALSE, TRUE, g_strdup (error->message), NULL);
  /* What is missing comes from the sysroot, not from the host's packages. */
  for (guint i = 0; i < report->len; i++)
    {
      requirement = g_ptr_array_index (report, i);
      if (setup != NULL && !requirement->ok && requirement->hint == NULL &&
          !g_str_equal (requirement->name, "qemu") && !g_str_equal (requirement->name, "minimal-image"))
        requirement->hint = g_strdup (setup);
    }

  add (report, "qlean-guest", inputs.guest != NULL, FALSE,
       inputs.guest != NULL
         ? g_strdup (inputs.guest)
         : g_strdup_printf (_("not built for %s: commands run through the agent alone; install "
                              "%s and rebuild Qlean"), info->name, cross),
       NULL);
  if (inputs.guest == NULL)
    {
      requirement = g_ptr_array_index (report, report->len - 1);
      requirement->hint = qlean_host_install_hint (cross);
    }
}

static char *
program_version (const char *program)
{
  g_autofree char *out = NULL;
  const char *argv[] = { program, "--version", NULL };
  char *newline;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL,
                     NULL, NULL, &out, NULL, NULL, NULL) || out == NULL)
    return g_strdup (program);

  newline = strchr (out, '\n');
  if (newline != NULL)
    *newline = '\0';

  return g_strdup_printf ("%s (%s)", program, out);
}

/**
 * qlean_check_requirements:
 * @qemu_binary: (nullable): the QEMU binary machines will use, %NULL for
 *   `qemu-system-x86_64`
 *
 * Checks what machines need on this host: QEMU, whether KVM works (it
 * falls back to TCG when it does not), and the inputs of the minimal
 * image (a kernel, busybox, qemu-ga). Each missing piece comes with the
 * command that installs it.
 *
 * Returns: (transfer container) (element-type QleanRequirement): the
 *   report; it frees its elements itself (bindings copy them)
 *
 * Since: 0.1
 */
GPtrArray *
qlean_check_requirements (const char *qemu_binary)
{
  return qlean_check_requirements_for_arch (qemu_binary, qlean_arch_get_host ());
}

/**
 * qlean_check_requirements_for_arch:
 * @qemu_binary: (nullable): the QEMU binary machines will use, %NULL for
 *   the one of @arch (`qemu-system-aarch64`)
 * @arch: the guests' architecture
 *
 * Like qlean_check_requirements(), for guests of @arch. For another
 * architecture than the host's, the minimal image's inputs are looked
 * for in its sysroot (see [ctor@Image.new_minimal_for_arch]), reported
 * as `sysroot`, `kernel`, `busybox` and `qemu-ga`, and the cross-built
 * qlean-guest as `qlean-guest` (not required: without it commands run
 * through the agent).
 *
 * Returns: (transfer container) (element-type QleanRequirement): the
 *   report; it frees its elements itself (bindings copy them)
 *
 * Since: 0.1
 */
GPtrArray *
qlean_check_requirements_for_arch (const char *qemu_binary,
                                   QleanArch   arch)
{
  GPtrArray *report = g_ptr_array_new_with_free_func ((GDestroyNotify) qlean_requirement_free);
  const QleanArchInfo *info = qlean_arch_get_info (arch);
  g_auto(QleanMinimalInputs) inputs = { .arch = arch };
  g_autoptr(GError) error = NULL;
  g_autofree char *qemu = NULL;
  g_autofree char *qemu_img = NULL;

  qemu = qlean_host_find_qemu_for_arch (qemu_binary, arch, &error);
  if (qemu != NULL && !qlean_arch_is_host (arch))
    {
      add (report, "qemu", TRUE, TRUE, program_version (qemu), NULL);
      add (report, "accel", TRUE, TRUE,
           g_strdup_printf (_("TCG (software emulation: KVM runs only %s guests on this host)"),
                            qlean_arch_to_string (qlean_arch_get_host ())),
           NULL);
    }
  else if (qemu != NULL)
    {
      g_autofree char *reason = NULL;
      gboolean kvm = qlean_host_kvm_usable (qemu, &reason);

      add (report, "qemu", TRUE, TRUE, program_version (qemu), NULL);
      add (report, "accel", TRUE, TRUE,
           kvm ? g_strdup (_("KVM"))
               : g_strdup_printf (_("TCG (software emulation; KVM not usable: %s)"), reason),
           NULL);
    }
  else
    add (report, "qemu", FALSE, TRUE, g_strdup (error->message), info->qemu_package);
  g_clear_error (&error);

  if (!qlean_arch_is_host (arch))
    check_foreign_inputs (report, arch);
  /* Each input is looked up in turn; report what was found so far. */
  else if (qlean_minimal_find_inputs (&inputs, &error))
    {
      add (report, "kernel", TRUE, TRUE, g_strdup (inputs.kernel), NULL);
      add (report, "busybox", TRUE, TRUE, g_strdup (inputs.busybox), NULL);
      add (report, "qemu-ga", TRUE, TRUE, program_version (inputs.qemu_ga), NULL);
    }
  else
    {
      add (report, "kernel", inputs.kernel != NULL && inputs.modules_dir != NULL, TRUE,
           inputs.kernel ? g_strdup (inputs.kernel) : g_strdup (_("no kernel in /boot")),
           info->kernel_package);
      add (report, "busybox", inputs.busybox != NULL, TRUE,
           inputs.busybox ? g_strdup (inputs.busybox) : g_strdup (_("not found")),
           "busybox-static");
      add (report, "qemu-ga", inputs.qemu_ga != NULL, TRUE,
           inputs.qemu_ga ? g_strdup (inputs.qemu_ga) : g_strdup (_("not found")),
           "qemu-guest-agent");
      if (inputs.kernel != NULL && inputs.modules_dir != NULL && inputs.busybox != NULL &&
          inputs.qemu_ga != NULL)
        add (report, "minimal-image", FALSE, TRUE, g_strdup (error->message), NULL);
    }

  qemu_img = g_find_program_in_path ("qemu-img");
  add (report, "qemu-img", qemu_img != NULL, FALSE,
       qemu_img ? program_version (qemu_img) : g_strdup (_("not found; needed for disk images")),
       "qemu-utils");

  /* Where the machine type has no BIOS (aarch64's virt), a disk image
   * without a kernel of its own boots through UEFI only; elsewhere UEFI
   * is there for those who ask for it. */
  if (info->uefi_code != NULL)
    {
      gboolean found = g_file_test (info->uefi_code, G_FILE_TEST_IS_REGULAR) &&
                       g_file_test (info->uefi_vars, G_FILE_TEST_IS_REGULAR);
      char *detail;

      if (found)
        detail = g_strdup (info->uefi_code);
      else if (!info->bios_boots_disk)
        detail = g_strdup_printf (_("%s not found; needed for disk images whose kernel QEMU "
                                    "cannot boot directly"), info->uefi_code);
      else
        detail = g_strdup_printf (_("%s not found; needed only by machines whose firmware "
                                    "setting is “uefi”"), info->uefi_code);
      add (report, "uefi-firmware", found, FALSE, detail, info->uefi_package);
    }

  return report;
}

/**
 * qlean_requirements_met:
 * @report: (element-type QleanRequirement): a report from
 *   qlean_check_requirements()
 *
 * Returns: whether every required piece is there
 *
 * Since: 0.1
 */
gboolean
qlean_requirements_met (GPtrArray *report)
{
  for (guint i = 0; i < report->len; i++)
    {
      QleanRequirement *requirement = g_ptr_array_index (report, i);

      if (requirement->required && !requirement->ok)
        return FALSE;
    }

  return TRUE;
}

/**
 * qlean_get_run_base_dir:
 * @error: return location for a #GError
 *
 * The directory, mode 0700, that holds the run directories of this
 * user's machines: `$QLEAN_RUN_DIR`, else `$XDG_RUNTIME_DIR/qlean`, else
 * `/tmp/qlean-UID`. Made when missing.
 *
 * Returns: (transfer full) (type filename): the directory, or %NULL with
 *   @error set
 *
 * Since: 0.1
 */
char *
qlean_get_run_base_dir (GError **error)
{
  return qlean_host_run_base (error);
}
