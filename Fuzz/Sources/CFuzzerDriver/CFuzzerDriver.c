// Header-only: the declaration is in include/CFuzzerDriver.h; libFuzzer defines it.
#include "CFuzzerDriver.h"
