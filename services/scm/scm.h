/* The SCM daemon's entry point (used by ozone-scm and `ozone scm`). */
#ifndef OZONE_SCM_H
#define OZONE_SCM_H

int scm_main(int argc, char **argv);

#endif
