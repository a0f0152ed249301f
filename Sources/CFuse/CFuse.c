// Intentionally empty: CFuse is a header-only shim (see include/CFuse.h). SwiftPM needs one C
// source file to build the target.
#include "CFuse.h"
