/* Executable entry of ozone-om; everything else is in the library. */
#include "om.h"

int main(int argc, char **argv)
{
    return om_main(argc, argv);
}
