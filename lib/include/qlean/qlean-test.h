/* In-tree stand-in for the installed <qlean/qlean-test.h>, so that tests
 * and examples include Qlean exactly as its users do. */
#include "../../testing/qlean-test.h"
