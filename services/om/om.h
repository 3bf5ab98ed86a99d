/* The Ozone Manager daemon's entry point (used by ozone-om and `ozone om`). */
#ifndef OZONE_OM_H
#define OZONE_OM_H

int om_main(int argc, char **argv);

#endif
