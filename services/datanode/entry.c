/* Executable entry of ozone-datanode; everything else is in the library. */
#include "datanode.h"

int main(int argc, char **argv)
{
    return datanode_main(argc, argv);
}
