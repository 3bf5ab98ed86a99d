/* The datanode daemon's entry point (ozone-datanode, `ozone datanode`). */
#ifndef OZONE_DATANODE_H
#define OZONE_DATANODE_H

int datanode_main(int argc, char **argv);

#endif
