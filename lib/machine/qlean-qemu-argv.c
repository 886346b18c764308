/* qlean-qemu-argv.c: the QEMU command line of a machine
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <json-glib/json-glib.h>

#include "qlean-network-private.h"
#include "qlean-qemu-argv-private.h"

static void
add (GPtrArray  *argv,
     const char *arg)
{
  g_ptr_array_add (argv, g_strdup (arg));
}

static void
add_printf (GPtrArray  *argv,
            const char *format,
            ...) G_GNUC_PRINTF (2, 3);

static void
add_printf (GPtrArray  *argv,
            const char *format,
            ...)
{
  va_list args;

  va_start (args, format);
  g_ptr_array_add (argv, g_strdup_vprintf (format, args));
  va_end (args);
}

/* QEMU's option parser splits on commas; a comma inside a value is
 * written twice. */
static char *
escape_commas (const char *value)
{
  g_auto(GStrv) parts = g_strsplit (value, ",", -1);

  return g_strjoinv (",,", parts);
}

static void
add_socket_chardev (GPtrArray         *argv,
                    const QleanQemuSpec *spec,
                    const char        *id,
                    int                fd,
                    const char        *socket_name)
{
  add (argv, "-chardev");
  if (fd >= 0)
    add_printf (argv, "socket,id=%s,fd=%d,server=on,wait=off", id, fd);
  else
    {
      g_autofree char *path = g_build_filename (spec->run_dir, socket_name, NULL);
      g_autofree char *escaped = escape_commas (path);

      add_printf (argv, "socket,id=%s,path=%s,server=on,wait=off", id, escaped);
    }
}

/* A -blockdev in JSON, which can say "no backing" (null) where the
 * key=value form cannot, and needs no comma escaping. */
static void
add_blockdev_json (GPtrArray  *argv,
                   const char *node_name,
                   const char *driver,
                   const char *filename,
                   gboolean    read_only,
                   const char *backing,
                   gboolean    no_backing)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "driver");
  json_builder_add_string_value (builder, driver);
  json_builder_set_member_name (builder, "node-name");
  json_builder_add_string_value (builder, node_name);
  if (read_only)
    {
      json_builder_set_member_name (builder, "read-only");
      json_builder_add_boolean_value (builder, TRUE);
    }
  json_builder_set_member_name (builder, "file");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "driver");
  json_builder_add_string_value (builder, "file");
  json_builder_set_member_name (builder, "filename");
  json_builder_add_string_value (builder, filename);
  json_builder_end_object (builder);
  if (backing != NULL || no_backing)
    {
      json_builder_set_member_name (builder, "backing");
      if (backing != NULL)
        json_builder_add_string_value (builder, backing);
      else
        json_builder_add_null_value (builder);
    }
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  add (argv, "-blockdev");
  g_ptr_array_add (argv, json_to_string (root, FALSE));
}

/* The steps of qlean_qemu_argv_build(), in the order their options
 * appear on the command line: QEMU reads some of them in order (the
 * root disk must come before the seed, to stay /dev/vda), and a dry run
 * shows them as they are added. */

/* Who the process is, and nothing QEMU would add by itself: no default
 * devices, no user config, no display. */
static void
add_identity (GPtrArray           *argv,
              const QleanQemuSpec *spec)
{
  add (argv, spec->qemu_binary);
  add (argv, "-name");
  add_printf (argv, "guest=%s,debug-threads=on", spec->name);
  add (argv, "-nodefaults");
  add (argv, "-no-user-config");
  add (argv, "-display");
  add (argv, "none");
}

/* The machine type, with guest RAM from a memory template when there is
 * one: the backend is named on -machine, so both go together. */
static void
add_machine (GPtrArray           *argv,
             const QleanQemuSpec *spec,
             const QleanArchInfo *arch)
{
  add (argv, "-machine");
  if (spec->mem_path != NULL)
    {
      g_autofree char *escaped = escape_commas (spec->mem_path);

      /* The same object, id and size on the machine that made the
       * template and on those started from it: only then does QEMU find
       * the RAM block the saved state (with x-ignore-shared) leaves out.
       * Its id is the one QEMU gives q35's RAM by default, so that this
       * machine's later snapshots load into a machine without a
       * template (only x86-64 machines use templates). */
      add_printf (argv, "%s,memory-backend=pc.ram", arch->machine);
      add (argv, "-object");
      add_printf (argv, "memory-backend-file,id=pc.ram,size=%uM,mem-path=%s,share=%s",
                  spec->memory_mib, escaped, spec->mem_share ? "on" : "off");
    }
  else if (spec->mem_memfd)
    {
      /* virtiofsd maps the guest's RAM: it must be shared memory with a
       * descriptor QEMU can pass on. Such machines are never saved, so
       * the id is only a name. */
      add_printf (argv, "%s,memory-backend=qlean.ram", arch->machine);
      add (argv, "-object");
      add_printf (argv, "memory-backend-memfd,id=qlean.ram,size=%uM,share=on", spec->memory_mib);
    }
  else
    add (argv, arch->machine);
}

/* UEFI as two flash chips: the firmware's code, shared read-only by
 * every machine, and the run's own variables (the boot entries the
 * firmware writes), which go with the run. */
static void
add_uefi (GPtrArray           *argv,
          const QleanQemuSpec *spec)
{
  g_autofree char *code = escape_commas (spec->uefi_code);
  g_autofree char *vars = g_build_filename (spec->run_dir, QLEAN_UEFI_VARS, NULL);
  g_autofree char *vars_escaped = escape_commas (vars);

  add (argv, "-drive");
  add_printf (argv, "if=pflash,format=raw,unit=0,readonly=on,file=%s", code);
  add (argv, "-drive");
  add_printf (argv, "if=pflash,format=raw,unit=1,file=%s", vars_escaped);
}

/* The accelerator and the CPU it runs, the firmware, and the machine's
 * size: cores and memory. */
static void
add_accel_and_cpu (GPtrArray           *argv,
                   const QleanQemuSpec *spec,
                   const QleanArchInfo *arch)
{
  if (spec->kvm)
    {
      add (argv, "-accel");
      add (argv, "kvm");
      add (argv, "-cpu");
      add (argv, "host");
    }
  else
    {
      /* A small translation cache keeps each machine's RSS low; the
       * default (1 GiB on 64-bit hosts) is mostly never touched but
       * still costs page tables, and guests this size do not need it. */
      add (argv, "-accel");
      add (argv, "tcg,tb-size=32");
      add (argv, "-cpu");
      add (argv, arch->tcg_cpu);
    }
  if (spec->uefi_code != NULL)
    add_uefi (argv, spec);
  else if (arch->bios != NULL)
    {
      add (argv, "-bios");
      add (argv, arch->bios);
    }
  add (argv, "-smp");
  add_printf (argv, "%u", spec->cores);
  add (argv, "-m");
  add_printf (argv, "%u", spec->memory_mib);
}

/* A kernel booted directly, with its initrd and command line. */
static void
add_kernel (GPtrArray           *argv,
            const QleanQemuSpec *spec)
{
  if (spec->kernel == NULL)
    return;

  add (argv, "-kernel");
  add (argv, spec->kernel);
  if (spec->initrd != NULL)
    {
      add (argv, "-initrd");
      add (argv, spec->initrd);
    }
  if (spec->cmdline != NULL)
    {
      add (argv, "-append");
      add (argv, spec->cmdline);
    }
}

/* The serial console: into the console pipe, or console.log itself. */
static void
add_console (GPtrArray           *argv,
             const QleanQemuSpec *spec)
{
  g_autofree char *console = g_build_filename (spec->run_dir, QLEAN_CONSOLE_LOG, NULL);
  g_autofree char *console_escaped = escape_commas (console);

  add (argv, "-chardev");
  if (spec->console_fd >= 0)
    add_printf (argv, "file,id=console,path=/dev/fd/%d", spec->console_fd);
  else
    add_printf (argv, "file,id=console,path=%s", console_escaped);
  add (argv, "-serial");
  add (argv, "chardev:console");
}

/* The channels the host talks over: QMP to QEMU, and on one
 * virtio-serial bus the stock guest agent and qlean-guest. */
static void
add_channels (GPtrArray           *argv,
              const QleanQemuSpec *spec)
{
  add_socket_chardev (argv, spec, "qmp", spec->qmp_fd, QLEAN_QMP_SOCKET);
  add (argv, "-mon");
  add (argv, "chardev=qmp,mode=control");

  add (argv, "-device");
  add (argv, "virtio-serial-pci,id=vser0,max_ports=4");
  add_socket_chardev (argv, spec, "qga", spec->qga_fd, QLEAN_QGA_SOCKET);
  add (argv, "-device");
  add (argv, "virtserialport,bus=vser0.0,chardev=qga,id=" QLEAN_QGA_PORT_ID ",name=org.qemu.guest_agent.0");
  add_socket_chardev (argv, spec, "data", spec->data_fd, QLEAN_DATA_SOCKET);
  add (argv, "-device");
  add (argv, "virtserialport,bus=vser0.0,chardev=data,id=data0,name=org.qlean.data.0");
}

/* The guest reports a kernel panic here (GUEST_PANICKED), so that a
 * panic is told apart from QEMU dying. */
static void
add_panic_device (GPtrArray           *argv,
                  const QleanArchInfo *arch)
{
  if (arch->panic_device != NULL)
    {
      add (argv, "-device");
      add (argv, arch->panic_device);
    }
}

/* Two machines restored from one saved state would otherwise go on
 * from the same state of the guest's random generator: writing the
 * host's bytes into /dev/urandom (the identity fix) mixes them in but
 * does not reseed it, and the copies read the same bytes (test-spares
 * saw it). A generation ID that changes at every start is what tells
 * the guest kernel that it is a copy: it reseeds at once. */
static void
add_genid_device (GPtrArray           *argv,
                  const QleanArchInfo *arch)
{
  if (arch->genid_device != NULL)
    {
      add (argv, "-device");
      add (argv, arch->genid_device);
    }
}

/* The network card: on a QleanNetwork's switch, on a host bridge, or
 * (a spare's) on a hub of QEMU's own. */
static void
add_network (GPtrArray           *argv,
             const QleanQemuSpec *spec)
{
  if (spec->net_socket != NULL)
    {
      g_autofree char *escaped = escape_commas (spec->net_socket);

      add (argv, "-netdev");
      add_printf (argv, "vde,id=net0,sock=%s,port=%u", escaped, spec->net_port);
    }
  else if (spec->net_bridge != NULL)
    {
      g_autofree char *bridge = escape_commas (spec->net_bridge);
      g_autofree char *helper = escape_commas (spec->net_bridge_helper);

      add (argv, "-netdev");
      add_printf (argv, "bridge,id=net0,br=%s,helper=%s", bridge, helper);
    }
  else if (spec->net_hub)
    {
      add (argv, "-netdev");
      add_printf (argv, "hubport,id=net0,hubid=%d", QLEAN_NETWORK_SPARE_HUB);
      /* A port with nothing behind it, which takes (and drops) what the
       * card sends while it is alone on the hub: a hub with no other
       * port cannot receive, and QEMU would hold the card's first frame
       * for a hub port nothing ever flushes, stalling its sending for
       * good. */
      add (argv, "-netdev");
      add_printf (argv, "hubport,id=net0-idle,hubid=%d", QLEAN_NETWORK_SPARE_HUB);
    }

  if (spec->net_socket != NULL || spec->net_bridge != NULL || spec->net_hub)
    {
      /* romfile= (empty) skips the iPXE option ROM: the guest never boots
       * from the network, and loading the ROM costs boot time. */
      add (argv, "-device");
      add_printf (argv, "virtio-net-pci,netdev=net0,id=" QLEAN_NETWORK_NIC_ID ",mac=%s,romfile=", spec->net_mac);
    }
}

/* The machine's disk (over the image's, when Qlean made the chain), then
 * the cloud-init seed. */
static void
add_disks (GPtrArray           *argv,
           const QleanQemuSpec *spec)
{
  if (spec->disk != NULL && spec->disk_base != NULL)
    {
      /* The chain as Qlean made it: the overlay over the image's disk,
       * which was checked to have no backing or data file of its own
       * (qlean_image_check_disk_file), opened in the format found then. */
      add_blockdev_json (argv, "base0", spec->disk_base_format, spec->disk_base, TRUE, NULL,
                         g_str_equal (spec->disk_base_format, "qcow2"));
      add_blockdev_json (argv, "disk0", "qcow2", spec->disk, FALSE, "base0", FALSE);
      add (argv, "-device");
      add (argv, "virtio-blk-pci,drive=disk0,id=vda");
    }
  else if (spec->disk != NULL)
    {
      g_autofree char *escaped = escape_commas (spec->disk);

      add (argv, "-blockdev");
      add_printf (argv, "driver=qcow2,node-name=disk0,file.driver=file,file.filename=%s", escaped);
      add (argv, "-device");
      add (argv, "virtio-blk-pci,drive=disk0,id=vda");
    }

  if (spec->seed != NULL)
    {
      g_autofree char *escaped = escape_commas (spec->seed);

      /* After the disk, so that the root disk stays /dev/vda. */
      add (argv, "-blockdev");
      add_printf (argv, "driver=raw,node-name=seed0,read-only=on,file.driver=file,file.filename=%s",
                  escaped);
      add (argv, "-device");
      add (argv, "virtio-blk-pci,drive=seed0,id=seed");
    }
}

/* Host folders over virtiofs: each share's virtiofsd listens on its
 * socket in the run directory, and QEMU connects to it. Read-only is
 * the daemon's business (see qlean-machine-virtiofs.c). */
static void
add_virtiofs_shares (GPtrArray           *argv,
                     const QleanQemuSpec *spec)
{
  for (guint i = 0; i < spec->n_shares; i++)
    {
      g_autofree char *name = g_strdup_printf (QLEAN_VIRTIOFS_SOCKET_FORMAT, i);
      g_autofree char *path = g_build_filename (spec->run_dir, name, NULL);
      g_autofree char *escaped = escape_commas (path);

      add (argv, "-chardev");
      add_printf (argv, "socket,id=vfs%u,path=%s", i, escaped);
      add (argv, "-device");
      add_printf (argv, "vhost-user-fs-pci,chardev=vfs%u,tag=" QLEAN_SHARE_TAG_PREFIX "%u,id=share%u",
                  i, i, i);
    }
}

/* Host folders shared over virtio-9p, mount tag qleanN for the Nth. */
static void
add_shares (GPtrArray           *argv,
            const QleanQemuSpec *spec)
{
  if (spec->shares_virtiofs)
    {
      add_virtiofs_shares (argv, spec);
      return;
    }

  for (guint i = 0; i < spec->n_shares; i++)
    {
      const QleanQemuShare *share = &spec->shares[i];
      g_autofree char *escaped = escape_commas (share->host_path);

      /* security_model=none runs as the user (no root needed, files are
       * the user's); mapped-xattr keeps the guest's owners and modes in
       * xattrs. readonly=on makes QEMU itself refuse writes (EROFS),
       * whatever the guest mounts. */
      add (argv, "-fsdev");
      add_printf (argv, "local,id=share%u,path=%s,security_model=%s%s", i, escaped,
                  share->mapped_xattr ? "mapped-xattr" : "none",
                  share->readonly ? ",readonly=on" : "");
      add (argv, "-device");
      add_printf (argv, "virtio-9p-pci,fsdev=share%u,mount_tag=" QLEAN_SHARE_TAG_PREFIX "%u,id=share%u",
                  i, i, i);
    }
}

/* Where QEMU writes its pid, whether it waits for a saved state, and
 * the caller's own arguments, last so that they can add to all above. */
static void
add_process_options (GPtrArray           *argv,
                     const QleanQemuSpec *spec)
{
  g_autofree char *pidfile = g_build_filename (spec->run_dir, "qemu.pid", NULL);

  add (argv, "-pidfile");
  add (argv, pidfile);

  if (spec->incoming)
    {
      add (argv, "-incoming");
      add (argv, "defer");
    }

  for (guint i = 0; spec->extra_args != NULL && spec->extra_args[i] != NULL; i++)
    add (argv, spec->extra_args[i]);
}

GStrv
qlean_qemu_argv_build (const QleanQemuSpec *spec)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  const QleanArchInfo *arch = spec->arch ? spec->arch : qlean_arch_get_info (QLEAN_ARCH_X86_64);

  add_identity (argv, spec);
  add_machine (argv, spec, arch);
  add_accel_and_cpu (argv, spec, arch);
  add_kernel (argv, spec);
  add_console (argv, spec);
  add_channels (argv, spec);
  add_panic_device (argv, arch);
  add_genid_device (argv, arch);
  add_network (argv, spec);
  add_disks (argv, spec);
  add_shares (argv, spec);
  add_process_options (argv, spec);

  g_ptr_array_add (argv, NULL);
  return (GStrv) g_ptr_array_steal (argv, NULL);
}
