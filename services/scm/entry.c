/* Executable entry of ozone-scm; everything else is in the library. */
#include "scm.h"

int main(int argc, char **argv)
{
    return scm_main(argc, argv);
}
