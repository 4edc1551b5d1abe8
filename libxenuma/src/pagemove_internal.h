/* Shared between libxenuma's translation units; not part of the API. */
#ifndef XENUMA_PAGEMOVE_INTERNAL_H
#define XENUMA_PAGEMOVE_INTERNAL_H

#include <xenctrl.h>
#include "libxenuma.h"

xc_interface *xn_xch(xn_handle *h);

#endif
