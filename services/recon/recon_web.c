/* The dashboard's static files (DESIGN.md §9): GET / serves index.html,
 * GET /static/<name> the other files (app.js, style.css) of the web
 * directory. Plain HTML, CSS and JavaScript: no build step, no external
 * URL; the page reads the JSON API and refreshes itself.
 *
 * The directory: ozone.recon.web.dir when set; else the installed copy
 * (RECON_WEB_INSTALL_DIR, <prefix>/share/ozone/recon/web) when it holds
 * index.html; else the source tree's (RECON_WEB_SOURCE_DIR), both baked in
 * by meson. Names are plain file names (tar_name_ok: no '/', no ".."),
 * so a request cannot leave the directory.
 */
#include "recon_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tar.h"

#ifndef RECON_WEB_SOURCE_DIR
#define RECON_WEB_SOURCE_DIR "services/recon/web"
#endif
#ifndef RECON_WEB_INSTALL_DIR
#define RECON_WEB_INSTALL_DIR "/usr/local/share/ozone/recon/web"
#endif

static char web_dir[4096];

static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');

    if (dot == NULL) {
        return "application/octet-stream";
    }
    if (strcmp(dot, ".html") == 0) {
        return "text/html; charset=utf-8";
    }
    if (strcmp(dot, ".js") == 0) {
        return "text/javascript; charset=utf-8";
    }
    if (strcmp(dot, ".css") == 0) {
        return "text/css; charset=utf-8";
    }
    if (strcmp(dot, ".svg") == 0) {
        return "image/svg+xml";
    }
    if (strcmp(dot, ".png") == 0) {
        return "image/png";
    }
    return "application/octet-stream";
}

static void serve(const char *name, struct http_response *resp)
{
    char path[4400];

    if (!tar_name_ok(name) || name[0] == '.') {
        http_response_printf(resp, 404, "text/plain", "not found\n");
        return;
    }
    snprintf(path, sizeof(path), "%s/%s", web_dir, name);
    if (access(path, R_OK) != 0) {
        http_response_printf(resp, 404, "text/plain", "not found: %s\n", name);
        return;
    }
    resp->status = 200;
    resp->content_type = content_type(name);
    resp->file_path = strdup(path);
    if (resp->file_path == NULL) {
        http_response_printf(resp, 500, "text/plain", "out of memory\n");
    }
}

static void http_index(void *data,
                       const struct http_request *req,
                       struct http_response *resp)
{
    (void)data;
    (void)req;
    serve("index.html", resp);
}

static void http_static(void *data,
                        const struct http_request *req,
                        struct http_response *resp)
{
    (void)data;
    serve(req->path + strlen("/static/"), resp);
}

static bool has_index(const char *dir)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/index.html", dir);
    return access(path, R_OK) == 0;
}

void recon_web_register(struct recon *r)
{
    const char *dir = conf_get(r->d->conf, "ozone.recon.web.dir");

    if (dir == NULL || dir[0] == '\0') {
        dir = has_index(RECON_WEB_INSTALL_DIR) ? RECON_WEB_INSTALL_DIR
                                               : RECON_WEB_SOURCE_DIR;
    }
    oz_strlcpy(web_dir, dir, sizeof(web_dir));
    if (!has_index(web_dir)) {
        log_warn(
            "no dashboard in '%s' (index.html missing); set "
            "ozone.recon.web.dir",
            web_dir);
    } else {
        log_info("serving the dashboard from '%s'", web_dir);
    }
    http_server_route(r->d->http, "GET", "/", http_index, r);
    http_server_route(r->d->http, "GET", "/index.html", http_index, r);
    http_server_route(r->d->http, "GET", "/static/*", http_static, r);
}
