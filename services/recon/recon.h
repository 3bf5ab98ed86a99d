/* The Recon daemon's entry point (ozone-recon, `ozone recon`). */
#ifndef OZONE_RECON_H
#define OZONE_RECON_H

int recon_main(int argc, char **argv);

#endif
