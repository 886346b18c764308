/* consumer.c: the smallest Qlean program, built against an installed
 * Qlean through pkg-config by check-install.sh. */

#include <qlean/qlean.h>
#include <qlean/qlean-test.h>

int
main (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;

  qlean_machine_config_set_cores (config, 2);
  machine = qlean_machine_new (NULL, config);

  g_print ("qlean %s, %u cores, state %d\n", QLEAN_VERSION_S,
           qlean_machine_config_get_cores (qlean_machine_get_config (machine)),
           qlean_machine_get_state (machine));
  return 0;
}
