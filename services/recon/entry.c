/* Executable entry of ozone-recon; everything else is in the library. */
#include "recon.h"

int main(int argc, char **argv)
{
    return recon_main(argc, argv);
}
