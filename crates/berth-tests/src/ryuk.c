/* A reaper speaking testcontainers' Ryuk protocol, for the test suite's
 * testcontainers image (no public registry is reachable): it listens on 8080,
 * takes filter lines ("label=key=value") from each connection and answers
 * "ACK"; once its last connection has been gone for RYUK_RECONNECTION_TIMEOUT
 * (or on SIGTERM) it removes the containers, networks, volumes and images
 * carrying those labels through the engine API on /var/run/docker.sock. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAXF 32
static char filters[MAXF][512];
static int nfilters;
static volatile sig_atomic_t stop;

static void on_term(int s) { (void)s; stop = 1; }

/* One request to the engine; the response body in out (NUL-terminated). */
static int api(const char *method, const char *path, char *out, size_t cap) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, "/var/run/docker.sock");
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { close(s); return -1; }
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n", method, path);
    if (write(s, req, n) != n) { close(s); return -1; }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(s, out + got, cap - 1 - got)) > 0) got += r;
    out[got] = 0;
    close(s);
    return 0;
}

/* The filters as the API's JSON, URL-encoded: {"label":["k=v",...]}. */
static void filter_query(char *q, size_t cap) {
    char raw[4096] = "{\"label\":[";
    for (int i = 0; i < nfilters; i++) {
        strcat(raw, i ? ",\"" : "\"");
        strcat(raw, filters[i]);
        strcat(raw, "\"");
    }
    strcat(raw, "]}");
    size_t o = 0;
    for (char *p = raw; *p && o + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-_.~", *p)) {
            q[o++] = *p;
        } else {
            o += snprintf(q + o, cap - o, "%%%02X", (unsigned char)*p);
        }
    }
    q[o] = 0;
}

/* Removes each object the list at `list` names by `key` ("Id" or "Name"). */
static void remove_all(const char *list, const char *key, const char *del_fmt) {
    static char body[1 << 20];
    char q[8192], path[9000];
    filter_query(q, sizeof q);
    snprintf(path, sizeof path, list, q);
    if (api("GET", path, body, sizeof body) != 0) return;
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    char self[128] = "";
    gethostname(self, sizeof self);
    for (char *p = strstr(body, pat); p; p = strstr(p, pat)) {
        p += strlen(pat);
        char id[256];
        size_t i = 0;
        while (p[i] && p[i] != '"' && i + 1 < sizeof id) { id[i] = p[i]; i++; }
        id[i] = 0;
        /* Not itself: it goes when it exits (auto-remove). */
        if (*self && strncmp(id, self, strlen(self)) == 0) { p += i; continue; }
        char del[512], ignore[4096];
        snprintf(del, sizeof del, del_fmt, id);
        api("DELETE", del, ignore, sizeof ignore);
        p += i;
    }
}

static void prune(void) {
    if (nfilters == 0) return;
    remove_all("/containers/json?all=1&filters=%s", "Id", "/containers/%s?force=1&v=1");
    remove_all("/networks?filters=%s", "Id", "/networks/%s");
    remove_all("/volumes?filters=%s", "Name", "/volumes/%s");
    remove_all("/images/json?filters=%s", "Id", "/images/%s?force=1");
    printf("Removed resources of %d filters\n", nfilters);
    fflush(stdout);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    int timeout = 10;
    const char *t = getenv("RYUK_RECONNECTION_TIMEOUT");
    if (t) timeout = atoi(t); /* "10s" reads as 10 */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(8080)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 16) != 0) {
        perror("listen");
        return 1;
    }
    printf("ryuk (berth's test reaper) Started!\n");
    struct pollfd fds[64];
    char bufs[64][512];
    size_t lens[64];
    int n = 1, ever = 0;
    time_t empty_since = 0;
    fds[0].fd = l;
    fds[0].events = POLLIN;
    while (!stop) {
        int r = poll(fds, n, 500);
        if (r < 0 && errno != EINTR) break;
        if (r > 0 && (fds[0].revents & POLLIN) && n < 64) {
            int c = accept(l, NULL, NULL);
            if (c >= 0) {
                fds[n].fd = c;
                fds[n].events = POLLIN;
                lens[n] = 0;
                n++;
                ever = 1;
            }
        }
        for (int i = 1; i < n; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t got = read(fds[i].fd, bufs[i] + lens[i], sizeof bufs[i] - 1 - lens[i]);
            if (got <= 0) {
                close(fds[i].fd);
                fds[i] = fds[n - 1];
                memcpy(bufs[i], bufs[n - 1], lens[n - 1]);
                lens[i] = lens[n - 1];
                n--;
                i--;
                continue;
            }
            lens[i] += got;
            char *nl;
            while ((nl = memchr(bufs[i], '\n', lens[i]))) {
                size_t len = nl - bufs[i];
                char line[512];
                memcpy(line, bufs[i], len);
                line[len] = 0;
                if (len && line[len - 1] == '\r') line[--len] = 0;
                if (strncmp(line, "label=", 6) == 0 && nfilters < MAXF) {
                    int dup = 0;
                    for (int f = 0; f < nfilters; f++) dup |= !strcmp(filters[f], line + 6);
                    if (!dup) snprintf(filters[nfilters++], sizeof filters[0], "%s", line + 6);
                }
                if (write(fds[i].fd, "ACK\n", 4) != 4) { /* the client went away */ }
                memmove(bufs[i], nl + 1, lens[i] - len - 1);
                lens[i] -= len + 1;
            }
        }
        if (n == 1 && ever) {
            if (!empty_since) empty_since = time(NULL);
            if (time(NULL) - empty_since >= timeout) break;
        } else {
            empty_since = 0;
        }
    }
    prune();
    return 0;
}
