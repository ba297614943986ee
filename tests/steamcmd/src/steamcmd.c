/*
 * linux32/steamcmd of the left4me SteamCMD stand-in: an i386 program that behaves like Valve's
 * SteamCMD client as public sources describe it (tests/steamcmd/README.md lists them), talking
 * to the fake Steam (`left4me-steam-standin`) over HTTP/1.0 instead of Valve's CM and CDN.
 *
 * It is one file on purpose: it is built by build.rs with a plain `gcc -m32` and nothing else.
 * Writes only into STEAMROOT (appcache/, config/, logs/, package/), $HOME/.steam and the
 * install dir.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define APP_ID "222860"
#define DEPOT_ID "222861"
#define APP_NAME "Left 4 Dead 2 Dedicated Server"
#define CLIENT_VERSION "1731433425"
#define CHUNK 65536
/* Directories we build paths under are kept well below PATH_MAX, so every path fits. */
#define DIR_MAX 1024

/* Exit codes as the real client's (steam-for-linux#4341): 0 ok, 1 AppInfo, 5 login, 8 other. */
enum { EXIT_OK = 0, EXIT_APPINFO = 1, EXIT_LOGIN = 5, EXIT_OTHER = 8, EXIT_RESTART = 42 };

static char steamroot[DIR_MAX];
static char server_host[256];
static char server_port[16];
static unsigned long long throttle; /* bytes per second, 0 = unthrottled */
static int no_prompt;
static char platform[16] = "linux";
static char install_dir[DIR_MAX];
static int logged_in;
static char login_user[128];
static char login_token[160] = "";
static int exit_code;

/* ---------------------------------------------------------------- small helpers */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, mode) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int mkdir_parent(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    char *slash = strrchr(tmp, '/');
    if (!slash || slash == tmp)
        return 0;
    *slash = 0;
    return mkdir_p(tmp, 0755);
}

static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[len] = 0;
    if (len_out)
        *len_out = len;
    return buf;
}

/* Write a file atomically: temp, fsync, rename. */
static int write_file_atomic(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return -1;
    }
    return rename(tmp, path);
}

/* The content hash the fake Steam's manifests carry (tests/steamcmd/src/content.rs has the
 * same): FNV-1a 64 over little-endian 64-bit words, then the tail bytes, then the length. */
#define HASH_PRIME 0x100000001b3ULL
#define HASH_OFFSET 0xcbf29ce484222325ULL
struct hasher {
    uint64_t h;
    unsigned char tail[8];
    unsigned ntail;
    unsigned long long len;
};

static void hasher_init(struct hasher *s)
{
    s->h = HASH_OFFSET;
    s->ntail = 0;
    s->len = 0;
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t w = 0;
    for (int i = 7; i >= 0; i--)
        w = (w << 8) | p[i];
    return w;
}

static void hasher_feed(struct hasher *s, const unsigned char *p, size_t n)
{
    s->len += n;
    while (n > 0 && s->ntail > 0) {
        s->tail[s->ntail++] = *p++;
        n--;
        if (s->ntail == 8) {
            s->h = (s->h ^ le64(s->tail)) * HASH_PRIME;
            s->ntail = 0;
        }
    }
    while (n >= 8) {
        s->h = (s->h ^ le64(p)) * HASH_PRIME;
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        s->tail[s->ntail++] = *p++;
        n--;
    }
}

static uint64_t hasher_done(struct hasher *s)
{
    uint64_t h = s->h;
    for (unsigned i = 0; i < s->ntail; i++)
        h = (h ^ s->tail[i]) * HASH_PRIME;
    return (h ^ (uint64_t)s->len) * HASH_PRIME;
}

/* Hash a file on disk; -1 when it cannot be read. */
static int hash_file(const char *path, uint64_t *out, unsigned long long *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    static unsigned char buf[CHUNK];
    struct hasher s;
    hasher_init(&s);
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        hasher_feed(&s, buf, (size_t)n);
    close(fd);
    if (n < 0)
        return -1;
    *out = hasher_done(&s);
    *size = s.len;
    return 0;
}

static void urlencode(char *out, size_t cap, const char *in)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == '/') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
}

static void urldecode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && p[1] && p[2]) {
            char h[3] = { p[1], p[2], 0 };
            *o++ = (char)strtol(h, NULL, 16);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
}

/* ---------------------------------------------------------------- HTTP/1.0 to the fake Steam */

struct http {
    int fd;
    int status;
    unsigned long long length; /* Content-Length */
    unsigned long long consumed;
    unsigned char buf[CHUNK];
    size_t have, off;
};

/* GET path; 0 when a response header arrived, -1 when the server cannot be reached. */
static int http_get(struct http *h, const char *path)
{
    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(server_host, server_port, &hints, &res) != 0)
        return -1;
    h->fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = { 10, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            h->fd = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (h->fd < 0)
        return -1;
    char req[PATH_MAX + 512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: Valve/Steam HTTP Client 1.0\r\n\r\n",
                     path, server_host);
    if (write(h->fd, req, (size_t)n) != n)
        goto fail;
    /* Read until the end of the header. */
    h->have = 0;
    h->off = 0;
    char *end = NULL;
    while (!end) {
        if (h->have == sizeof h->buf - 1)
            goto fail;
        ssize_t r = read(h->fd, h->buf + h->have, sizeof h->buf - 1 - h->have);
        if (r <= 0)
            goto fail;
        h->have += (size_t)r;
        h->buf[h->have] = 0;
        end = strstr((char *)h->buf, "\r\n\r\n");
    }
    h->status = 0;
    sscanf((char *)h->buf, "HTTP/%*s %d", &h->status);
    h->length = 0;
    char *cl = strcasestr((char *)h->buf, "\r\nContent-Length:");
    if (cl && cl < end)
        h->length = strtoull(cl + 17, NULL, 10);
    h->off = (size_t)(end + 4 - (char *)h->buf);
    h->consumed = 0;
    return 0;
fail:
    close(h->fd);
    h->fd = -1;
    return -1;
}

/* Read body bytes; 0 at the end of the body, -1 when the connection broke before it. */
static ssize_t http_read(struct http *h, unsigned char *out, size_t n)
{
    if (h->consumed >= h->length)
        return 0;
    if (n > h->length - h->consumed)
        n = (size_t)(h->length - h->consumed);
    ssize_t got;
    if (h->off < h->have) {
        got = (ssize_t)(h->have - h->off < n ? h->have - h->off : n);
        memcpy(out, h->buf + h->off, (size_t)got);
        h->off += (size_t)got;
    } else {
        got = read(h->fd, out, n);
        if (got <= 0)
            return -1;
    }
    h->consumed += (unsigned long long)got;
    return got;
}

static void http_close(struct http *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
}

/* GET a whole text body (malloc'd); NULL when unreachable or broken. */
static char *http_get_text(const char *path)
{
    static struct http h;
    if (http_get(&h, path) != 0)
        return NULL;
    if (h.status != 200) {
        http_close(&h);
        return NULL;
    }
    char *body = malloc(h.length + 1);
    size_t len = 0;
    ssize_t r;
    while (body && (r = http_read(&h, (unsigned char *)body + len, h.length - len)) > 0)
        len += (size_t)r;
    http_close(&h);
    if (!body || len != h.length) {
        free(body);
        return NULL;
    }
    body[len] = 0;
    return body;
}

/* ---------------------------------------------------------------- setup, banner, self-update */

static void find_steamroot(void)
{
    char exe[DIR_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "steamcmd: cannot read /proc/self/exe\n");
        exit(EXIT_OTHER);
    }
    exe[n] = 0;
    /* STEAMROOT/linux32/steamcmd */
    for (int i = 0; i < 2; i++) {
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = 0;
    }
    snprintf(steamroot, sizeof steamroot, "%s", exe);
}

static void read_standin_cfg(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/steam_standin.cfg", steamroot);
    char *text = read_file(path, NULL);
    if (!text)
        return;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "server=http://", 14) == 0) {
            char *hp = line + 14;
            char *slash = strchr(hp, '/');
            if (slash)
                *slash = 0;
            char *colon = strrchr(hp, ':');
            if (colon) {
                *colon = 0;
                snprintf(server_port, sizeof server_port, "%s", colon + 1);
            } else {
                snprintf(server_port, sizeof server_port, "80");
            }
            if (hp[0] == '[') { /* [v6]:port */
                hp++;
                char *rb = strchr(hp, ']');
                if (rb)
                    *rb = 0;
            }
            snprintf(server_host, sizeof server_host, "%s", hp);
        } else if (strncmp(line, "throttle=", 9) == 0) {
            throttle = strtoull(line + 9, NULL, 10);
        }
    }
    free(text);
}

/* The first run "updates" SteamCMD itself and exits 42, which makes steamcmd.sh run it again,
 * as the real bootstrapper does. */
static void self_update_once(void)
{
    char marker[PATH_MAX];
    snprintf(marker, sizeof marker, "%s/package/steam_cmd_linux.installed", steamroot);
    if (access(marker, F_OK) == 0)
        return;
    printf("[  0%%] Downloading update (0 of 58,133 KB)...\n");
    printf("[100%%] Download Complete.\n");
    printf("[----] Applying update...\n");
    printf("[----] Extracting package...\n");
    printf("[----] Installing update...\n");
    printf("[----] Cleaning up...\n");
    printf("[----] Update complete, launching Steamcmd...\n");
    fflush(stdout);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/package", steamroot);
    mkdir_p(dir, 0755);
    if (write_file_atomic(marker, CLIENT_VERSION "\n") != 0) {
        printf("Failed to write %s: %s\n", marker, strerror(errno));
        exit(EXIT_OTHER);
    }
    exit(EXIT_RESTART);
}

static void banner(void)
{
    char logs[DIR_MAX + 16], path[PATH_MAX];
    snprintf(logs, sizeof logs, "%s/logs", steamroot);
    mkdir_p(logs, 0755);
    snprintf(path, sizeof path, "%s/stderr.txt", logs);
    printf("Redirecting stderr to '%s'\n", path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
    printf("Logging directory: '%s'\n", logs);
    printf("[  0%%] Checking for available updates...\n");
    fflush(stdout);
    self_update_once();
    printf("[----] Verifying installation...\n");
    printf("Steam Console Client (c) Valve Corporation - version " CLIENT_VERSION "\n");
    printf("-- type 'quit' to exit --\n");
    printf("Loading Steam API...OK\n");
    fflush(stdout);
    /* ~/.steam/steam.pid, as the real client leaves behind. */
    const char *home = getenv("HOME");
    if (home && *home) {
        char dot[DIR_MAX + 16];
        snprintf(dot, sizeof dot, "%s/.steam", home);
        if (mkdir_p(dot, 0755) == 0) {
            char pid[64];
            snprintf(pid, sizeof pid, "%d\n", (int)getpid());
            snprintf(path, sizeof path, "%s/steam.pid", dot);
            write_file_atomic(path, pid);
        }
    }
}

/* ---------------------------------------------------------------- login */

static void config_path(char *out, size_t cap)
{
    snprintf(out, cap, "%s/config/config.vdf", steamroot);
}

/* The cached login token of `user` from config/config.vdf, if any. */
static int cached_token(const char *user, char *out, size_t cap)
{
    char path[PATH_MAX];
    config_path(path, sizeof path);
    char *text = read_file(path, NULL);
    if (!text)
        return -1;
    char key[200];
    snprintf(key, sizeof key, "\"%s\"", user);
    char *p = strstr(text, "\"ConnectCache\"");
    int found = -1;
    if (p && (p = strstr(p, key))) {
        p += strlen(key);
        char *q1 = strchr(p, '"');
        char *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
        if (q1 && q2 && (size_t)(q2 - q1) < cap) {
            memcpy(out, q1 + 1, (size_t)(q2 - q1 - 1));
            out[q2 - q1 - 1] = 0;
            found = 0;
        }
    }
    free(text);
    return found;
}

static void save_token(const char *user, const char *token)
{
    char dir[PATH_MAX], path[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/config", steamroot);
    mkdir_p(dir, 0700);
    config_path(path, sizeof path);
    char text[2048];
    snprintf(text, sizeof text,
             "\"InstallConfigStore\"\n{\n\t\"Software\"\n\t{\n\t\t\"Valve\"\n\t\t{\n\t\t\t\"Steam\"\n\t\t\t{\n"
             "\t\t\t\t\"Accounts\"\n\t\t\t\t{\n\t\t\t\t\t\"%s\"\n\t\t\t\t\t{\n\t\t\t\t\t\t\"SteamID\"\t\t\"0\"\n"
             "\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t\t\"ConnectCache\"\n\t\t\t\t{\n\t\t\t\t\t\"%s\"\t\t\"%s\"\n"
             "\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}\n",
             user, user, token);
    write_file_atomic(path, text);
}

static int read_line_stdin(char *out, size_t cap, int secret)
{
    struct termios old, quiet;
    int tty = secret && isatty(0) && tcgetattr(0, &old) == 0;
    if (tty) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(0, TCSANOW, &quiet);
    }
    int ok = fgets(out, (int)cap, stdin) != NULL;
    if (tty) {
        tcsetattr(0, TCSANOW, &old);
        printf("\n");
    }
    if (!ok)
        return -1;
    out[strcspn(out, "\r\n")] = 0;
    return 0;
}

static void login_ok(const char *user, const char *token)
{
    printf("OK\n");
    printf("Waiting for client config...OK\n");
    printf("Waiting for user info...OK\n");
    fflush(stdout);
    logged_in = 1;
    snprintf(login_user, sizeof login_user, "%s", user);
    snprintf(login_token, sizeof login_token, "%s", token);
}

/* One login request; returns the server's reply (malloc'd) after the retries of an unreachable
 * server, or NULL (and prints "FAILED (No Connection)"). */
static char *login_request(const char *query)
{
    char path[1024];
    snprintf(path, sizeof path, "/login?%s", query);
    for (int attempt = 0; attempt < 5; attempt++) {
        char *reply = http_get_text(path);
        if (reply)
            return reply;
        if (attempt < 4) {
            printf("Retrying...\n");
            fflush(stdout);
            sleep_seconds(0.2);
        }
    }
    printf("FAILED (No Connection)\n");
    return NULL;
}

static int login_fail(const char *reason)
{
    printf("FAILED (%s)\n", reason);
    fflush(stdout);
    return EXIT_LOGIN;
}

static int do_login(const char *user, const char *password, const char *guard)
{
    char query[1024], eu[384], ep[384], eg[96];
    if (strcmp(user, "anonymous") == 0) {
        printf("\nConnecting anonymously to Steam Public...");
        fflush(stdout);
        char *reply = login_request("user=anonymous");
        if (!reply)
            return EXIT_LOGIN;
        int rc = 0;
        if (strncmp(reply, "ok ", 3) == 0)
            login_ok("anonymous", "anonymous");
        else
            rc = login_fail(strncmp(reply, "error ", 6) == 0 ? reply + 6 : "Unknown");
        free(reply);
        return rc;
    }
    urlencode(eu, sizeof eu, user);
    char pw[256] = "", code[64] = "";
    if (guard)
        snprintf(code, sizeof code, "%s", guard);
    if (!password) {
        char token[160];
        if (cached_token(user, token, sizeof token) == 0) {
            printf("\nLogging in using cached credentials.\n");
            printf("Logging in user '%s' [U:1:0] to Steam Public...", user);
            fflush(stdout);
            urlencode(ep, sizeof ep, token);
            snprintf(query, sizeof query, "user=%s&token=%s", eu, ep);
            char *reply = login_request(query);
            if (!reply)
                return EXIT_LOGIN;
            int rc = 0;
            if (strncmp(reply, "ok ", 3) == 0)
                login_ok(user, reply + 3);
            else
                rc = login_fail(strncmp(reply, "error ", 6) == 0 ? reply + 6 : "Unknown");
            free(reply);
            return rc;
        }
        if (no_prompt) {
            printf("\nCached credentials not found.\n");
            printf("Logging in user '%s' [U:1:0] to Steam Public...", user);
            return login_fail("Invalid Password");
        }
        printf("password: ");
        fflush(stdout);
        if (read_line_stdin(pw, sizeof pw, 1) != 0)
            return login_fail("Invalid Password");
    } else {
        snprintf(pw, sizeof pw, "%s", password);
    }
    printf("\nLogging in using username/password.\n");
    for (;;) {
        if (code[0])
            printf("Steam Guard code provided.\n");
        printf("Logging in user '%s' [U:1:0] to Steam Public...", user);
        fflush(stdout);
        urlencode(ep, sizeof ep, pw);
        urlencode(eg, sizeof eg, code);
        snprintf(query, sizeof query, "user=%s&password=%s&guard=%s", eu, ep, eg);
        char *reply = login_request(query);
        if (!reply)
            return EXIT_LOGIN;
        if (strncmp(reply, "ok ", 3) == 0) {
            save_token(user, reply + 3);
            login_ok(user, reply + 3);
            free(reply);
            return 0;
        }
        if (strcmp(reply, "guard") == 0 && !code[0]) {
            free(reply);
            printf("\nThis computer has not been authenticated for your account using Steam Guard.\n");
            printf("Please check your email for the message from Steam, and enter the Steam Guard\n");
            printf(" code from that message.\n");
            printf("You can also enter this code at any time using 'set_steam_guard_code'\n");
            printf(" at the console.\n");
            if (no_prompt)
                return login_fail("Account Logon Denied");
            printf("Steam Guard code:");
            fflush(stdout);
            if (read_line_stdin(code, sizeof code, 0) != 0 || !code[0])
                return login_fail("Account Logon Denied");
            continue;
        }
        int rc = login_fail(strncmp(reply, "error ", 6) == 0 ? reply + 6 : "Invalid Login Auth Code");
        free(reply);
        return rc;
    }
}

/* ---------------------------------------------------------------- app info */

static void appinfo_path(char *out, size_t cap)
{
    snprintf(out, cap, "%s/appcache/appinfo.vdf", steamroot);
}

static int appinfo_fetch(void)
{
    char token[400], path[600];
    urlencode(token, sizeof token, login_token);
    snprintf(path, sizeof path, "/appinfo/" APP_ID "?token=%s", token);
    char *text = http_get_text(path);
    if (!text)
        return -1;
    char dir[PATH_MAX], file[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/appcache", steamroot);
    mkdir_p(dir, 0755);
    appinfo_path(file, sizeof file);
    int rc = write_file_atomic(file, text);
    free(text);
    return rc;
}

static void app_info_update(void)
{
    if (!logged_in || appinfo_fetch() != 0) {
        printf("ERROR! Failed to request AppInfo update, not online or not logged in to Steam.\n");
        exit_code = EXIT_APPINFO;
    }
}

static void app_info_print(const char *app)
{
    if (strcmp(app, APP_ID) != 0) {
        printf("No app info for AppID %s found, requesting...\n", app);
        return;
    }
    char path[PATH_MAX];
    appinfo_path(path, sizeof path);
    if (access(path, R_OK) != 0 && (!logged_in || appinfo_fetch() != 0)) {
        printf("No app info for AppID %s found, requesting...\n", app);
        exit_code = EXIT_APPINFO;
        return;
    }
    char *text = read_file(path, NULL);
    if (text) {
        fputs(text, stdout);
        free(text);
    }
}

/* ---------------------------------------------------------------- app_update */

struct entry {
    char *path;
    unsigned mode;
    unsigned long long size;
    uint64_t hash;
    int need;
};

struct manifest {
    unsigned long long build;
    unsigned long long missing; /* what a lying server left out */
    struct entry *files;
    size_t count;
};

static void manifest_free(struct manifest *m)
{
    for (size_t i = 0; i < m->count; i++)
        free(m->files[i].path);
    free(m->files);
    memset(m, 0, sizeof *m);
}

/* Parses the fake Steam's manifest text; returns NULL or the error text ("error TEXT"). */
static const char *manifest_parse(char *text, struct manifest *m)
{
    memset(m, 0, sizeof *m);
    size_t cap = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "error ", 6) == 0)
            return line + 6;
        if (strncmp(line, "build ", 6) == 0) {
            m->build = strtoull(line + 6, NULL, 10);
        } else if (strncmp(line, "missing ", 8) == 0) {
            m->missing = strtoull(line + 8, NULL, 10);
        } else if (strncmp(line, "file ", 5) == 0) {
            struct entry e = { 0 };
            int pos = 0;
            unsigned long long h = 0;
            if (sscanf(line + 5, "%o %llu %llx %n", &e.mode, &e.size, &h, &pos) < 3 || !pos)
                continue;
            e.hash = h;
            e.path = strdup(line + 5 + pos);
            urldecode(e.path);
            if (m->count == cap) {
                cap = cap ? cap * 2 : 64;
                m->files = realloc(m->files, cap * sizeof *m->files);
            }
            m->files[m->count++] = e;
        }
    }
    return m->build ? NULL : "Invalid manifest";
}

static void manifest_text_write(const char *path, const struct manifest *m)
{
    size_t cap = 128 + m->count * (PATH_MAX / 8);
    char *text = malloc(cap);
    size_t len = (size_t)snprintf(text, cap, "build %llu\n", m->build);
    for (size_t i = 0; i < m->count; i++) {
        char enc[PATH_MAX * 3];
        urlencode(enc, sizeof enc, m->files[i].path);
        size_t need = strlen(enc) + 64;
        if (len + need >= cap) {
            cap = cap * 2 + need;
            text = realloc(text, cap);
        }
        len += (size_t)snprintf(text + len, cap - len, "file %o %llu %016llx %s\n", m->files[i].mode,
                                m->files[i].size, (unsigned long long)m->files[i].hash, enc);
    }
    write_file_atomic(path, text);
    free(text);
}

static struct entry *manifest_find(const struct manifest *m, const char *path)
{
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->files[i].path, path) == 0)
            return &m->files[i];
    return NULL;
}

static unsigned long long acf_buildid(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/steamapps/appmanifest_" APP_ID ".acf", dir);
    char *text = read_file(path, NULL);
    if (!text)
        return 0;
    unsigned long long id = 0;
    char *p = strstr(text, "\"buildid\"");
    if (p) {
        p = strchr(p + 9, '"');
        if (p)
            id = strtoull(p + 1, NULL, 10);
    }
    free(text);
    return id;
}

struct counts {
    unsigned long long to_download, downloaded, to_stage, staged, size_on_disk;
};

static void acf_write(const char *dir, unsigned long long build, unsigned long long target, int flags,
                      const char *branch, const struct counts *c, unsigned long long manifest_id)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/steamapps/appmanifest_" APP_ID ".acf", dir);
    char userconfig[256] = "";
    if (strcmp(branch, "public") != 0)
        snprintf(userconfig, sizeof userconfig, "\t\t\"betakey\"\t\t\"%s\"\n", branch);
    char text[4096];
    snprintf(text, sizeof text,
             "\"AppState\"\n{\n"
             "\t\"appid\"\t\t\"" APP_ID "\"\n"
             "\t\"Universe\"\t\t\"1\"\n"
             "\t\"name\"\t\t\"" APP_NAME "\"\n"
             "\t\"StateFlags\"\t\t\"%d\"\n"
             "\t\"installdir\"\t\t\"" APP_NAME "\"\n"
             "\t\"LastUpdated\"\t\t\"%lld\"\n"
             "\t\"SizeOnDisk\"\t\t\"%llu\"\n"
             "\t\"StagingSize\"\t\t\"0\"\n"
             "\t\"buildid\"\t\t\"%llu\"\n"
             "\t\"LastOwner\"\t\t\"0\"\n"
             "\t\"UpdateResult\"\t\t\"%d\"\n"
             "\t\"BytesToDownload\"\t\t\"%llu\"\n"
             "\t\"BytesDownloaded\"\t\t\"%llu\"\n"
             "\t\"BytesToStage\"\t\t\"%llu\"\n"
             "\t\"BytesStaged\"\t\t\"%llu\"\n"
             "\t\"TargetBuildID\"\t\t\"%llu\"\n"
             "\t\"AutoUpdateBehavior\"\t\t\"0\"\n"
             "\t\"AllowOtherDownloadsWhileRunning\"\t\t\"0\"\n"
             "\t\"ScheduledAutoUpdate\"\t\t\"0\"\n"
             "\t\"InstalledDepots\"\n\t{\n"
             "\t\t\"" DEPOT_ID "\"\n\t\t{\n"
             "\t\t\t\"manifest\"\t\t\"%llu\"\n"
             "\t\t\t\"size\"\t\t\"%llu\"\n"
             "\t\t}\n\t}\n"
             "\t\"UserConfig\"\n\t{\n%s\t}\n"
             "\t\"MountedConfig\"\n\t{\n%s\t}\n"
             "}\n",
             flags, (long long)time(NULL), c->size_on_disk, build, flags == 4 ? 0 : 2, c->to_download,
             c->downloaded, c->to_stage, c->staged, target, manifest_id, c->size_on_disk, userconfig,
             userconfig);
    write_file_atomic(path, text);
}

static void progress(unsigned state, const char *name, unsigned long long done, unsigned long long total)
{
    double pct = total ? 100.0 * (double)done / (double)total : 0.0;
    printf(" Update state (0x%x) %s, progress: %.2f (%llu / %llu)\n", state, name, pct, done, total);
    fflush(stdout);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* Remove now-empty parent directories of `rel` up to the install dir. */
static void prune_parents(const char *dir, const char *rel)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", rel);
    char *slash;
    while ((slash = strrchr(tmp, '/'))) {
        *slash = 0;
        char full[PATH_MAX * 2];
        snprintf(full, sizeof full, "%s/%s", dir, tmp);
        if (rmdir(full) != 0)
            break;
    }
}

enum dl { DL_OK, DL_DISK_FULL, DL_NETWORK };

static enum dl download_file(const struct manifest *m, const struct entry *e, const char *dest,
                             unsigned long long *done, unsigned long long total, double *last_line,
                             double started, unsigned long long base)
{
    char enc[PATH_MAX * 3], path[PATH_MAX * 3 + 64];
    urlencode(enc, sizeof enc, e->path);
    snprintf(path, sizeof path, "/depot/%llu/%s", m->build, enc);
    static struct http h;
    if (http_get(&h, path) != 0 || h.status != 200 || h.length != e->size) {
        http_close(&h);
        return DL_NETWORK;
    }
    if (mkdir_parent(dest) != 0) {
        http_close(&h);
        return errno == ENOSPC ? DL_DISK_FULL : DL_NETWORK;
    }
    int fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        http_close(&h);
        return errno == ENOSPC || errno == EDQUOT ? DL_DISK_FULL : DL_NETWORK;
    }
    static unsigned char buf[CHUNK];
    enum dl rc = DL_OK;
    for (;;) {
        size_t want = sizeof buf;
        if (throttle && throttle < want * 4)
            want = (size_t)(throttle / 4 > 512 ? throttle / 4 : 512);
        ssize_t n = http_read(&h, buf, want);
        if (n == 0)
            break;
        if (n < 0) {
            rc = DL_NETWORK;
            break;
        }
        size_t off = 0;
        while (off < (size_t)n) {
            ssize_t w = write(fd, buf + off, (size_t)n - off);
            if (w < 0) {
                rc = errno == ENOSPC || errno == EDQUOT ? DL_DISK_FULL : DL_NETWORK;
                break;
            }
            off += (size_t)w;
        }
        if (rc != DL_OK)
            break;
        *done += (unsigned long long)n;
        if (throttle) {
            double due = started + (double)(*done - base) / (double)throttle;
            while (now_seconds() < due) {
                double left = due - now_seconds();
                sleep_seconds(left > 0.25 ? 0.25 : left);
                if (now_seconds() - *last_line >= 1.0) {
                    progress(0x61, "downloading", *done, total);
                    *last_line = now_seconds();
                }
            }
        }
        if (now_seconds() - *last_line >= 1.0) {
            progress(0x61, "downloading", *done, total);
            *last_line = now_seconds();
        }
    }
    http_close(&h);
    if (close(fd) != 0 && rc == DL_OK)
        rc = errno == ENOSPC || errno == EDQUOT ? DL_DISK_FULL : DL_NETWORK;
    return rc;
}

static void app_update(const char *app, const char *beta, const char *betapassword, int validate)
{
    char dir[DIR_MAX + 64];
    if (install_dir[0])
        snprintf(dir, sizeof dir, "%s", install_dir);
    else
        snprintf(dir, sizeof dir, "%s/steamapps/common/" APP_NAME, steamroot);
    const char *branch = beta && *beta ? beta : "public";
    if (strcmp(app, APP_ID) != 0) {
        printf("ERROR! Failed to install app '%s' (No subscription)\n", app);
        exit_code = EXIT_OTHER;
        return;
    }
    if (!logged_in) {
        printf("ERROR! Failed to install app '%s' (No Connection)\n", app);
        exit_code = EXIT_OTHER;
        return;
    }
    char steamapps[PATH_MAX + 16];
    snprintf(steamapps, sizeof steamapps, "%s/steamapps", dir);
    if (mkdir_p(steamapps, 0755) != 0) {
        printf("Error! App '%s' state is 0x%x after update job.\n", app, errno == ENOSPC ? 0x202 : 0x606);
        exit_code = EXIT_OTHER;
        return;
    }
    unsigned long long installed = acf_buildid(dir);

    char eb[256], ebp[256], et[400], path[2048];
    urlencode(eb, sizeof eb, branch);
    urlencode(ebp, sizeof ebp, betapassword ? betapassword : "");
    urlencode(et, sizeof et, login_token);
    snprintf(path, sizeof path, "/manifest/" APP_ID "?branch=%s&betapassword=%s&platform=%s&token=%s&installed=%llu",
             eb, ebp, platform, et, installed);
    char *text = http_get_text(path);
    if (!text) {
        printf("Error! App '%s' state is 0x602 after update job.\n", app);
        exit_code = EXIT_OTHER;
        return;
    }
    struct manifest want, old = { 0 };
    const char *err = manifest_parse(text, &want);
    if (err) {
        printf("ERROR! Failed to install app '%s' (%s)\n", app, err);
        exit_code = EXIT_OTHER;
        free(text);
        manifest_free(&want);
        return;
    }
    free(text);

    char old_path[PATH_MAX + 64], new_path[PATH_MAX + 64];
    snprintf(old_path, sizeof old_path, "%s/depotcache/" DEPOT_ID "_%llu.manifest", steamapps, installed);
    snprintf(new_path, sizeof new_path, "%s/depotcache/" DEPOT_ID "_%llu.manifest", steamapps, want.build);
    int have_old = 0;
    if (installed) {
        char *old_text = read_file(old_path, NULL);
        if (old_text) {
            have_old = manifest_parse(old_text, &old) == NULL;
            free(old_text);
        }
    }
    if (installed == want.build && !validate && have_old) {
        printf("Success! App '%s' already up to date.\n", app);
        manifest_free(&want);
        manifest_free(&old);
        return;
    }

    progress(0x3, "reconfiguring", 0, 0);
    unsigned long long total_size = 0, need_bytes = 0;
    for (size_t i = 0; i < want.count; i++)
        total_size += want.files[i].size;
    double last_line = now_seconds();
    if (validate) {
        unsigned long long checked = 0;
        progress(0x5, "verifying install", 0, total_size);
        for (size_t i = 0; i < want.count; i++) {
            struct entry *e = &want.files[i];
            char full[PATH_MAX * 2];
            snprintf(full, sizeof full, "%s/%s", dir, e->path);
            uint64_t h = 0;
            unsigned long long size = 0;
            struct stat st;
            e->need = hash_file(full, &h, &size) != 0 || size != e->size || h != e->hash;
            if (!e->need && lstat(full, &st) == 0 && (st.st_mode & 07777) != e->mode)
                chmod(full, e->mode);
            checked += e->size;
            if (now_seconds() - last_line >= 1.0) {
                progress(0x5, "verifying install", checked, total_size);
                last_line = now_seconds();
            }
        }
        progress(0x5, "verifying install", total_size, total_size);
    } else {
        for (size_t i = 0; i < want.count; i++) {
            struct entry *e = &want.files[i];
            struct entry *o = have_old ? manifest_find(&old, e->path) : NULL;
            e->need = !o || o->hash != e->hash || o->size != e->size || o->mode != e->mode;
            if (o && !e->need)
                continue;
            if (o && o->hash == e->hash && o->size == e->size) { /* mode only */
                char full[PATH_MAX * 2];
                snprintf(full, sizeof full, "%s/%s", dir, e->path);
                chmod(full, e->mode);
                e->need = 0;
            }
        }
    }
    for (size_t i = 0; i < want.count; i++)
        if (want.files[i].need)
            need_bytes += want.files[i].size;

    char staging[PATH_MAX + 64];
    snprintf(staging, sizeof staging, "%s/downloading/" APP_ID, steamapps);
    struct counts c = { need_bytes + want.missing, 0, need_bytes + want.missing, 0, 0 };
    progress(0x11, "preallocating", 0, need_bytes);
    if (mkdir_p(staging, 0755) != 0) {
        printf("Error! App '%s' state is 0x%x after update job.\n", app, errno == ENOSPC ? 0x202 : 0x606);
        exit_code = EXIT_OTHER;
        manifest_free(&want);
        manifest_free(&old);
        return;
    }

    unsigned long long done = 0;
    progress(0x61, "downloading", 0, need_bytes);
    last_line = now_seconds();
    double started = now_seconds();
    unsigned state = 0;
    for (size_t i = 0; i < want.count && !state; i++) {
        struct entry *e = &want.files[i];
        if (!e->need)
            continue;
        char dest[PATH_MAX * 2];
        snprintf(dest, sizeof dest, "%s/%s", staging, e->path);
        uint64_t h = 0;
        unsigned long long size = 0;
        if (hash_file(dest, &h, &size) == 0 && size == e->size && h == e->hash) {
            done += e->size; /* resumed: a previous run fetched it already */
            continue;
        }
        enum dl r = download_file(&want, e, dest, &done, need_bytes, &last_line, started, 0);
        if (r == DL_DISK_FULL)
            state = 0x202;
        else if (r == DL_NETWORK)
            state = 0x602;
    }
    c.downloaded = done;
    if (state) {
        progress(0x61, "downloading", done, need_bytes);
        acf_write(dir, installed, want.build, 1026, branch, &c, 0);
        printf("Error! App '%s' state is 0x%x after update job.\n", app, state);
        exit_code = EXIT_OTHER;
        manifest_free(&want);
        manifest_free(&old);
        return;
    }
    progress(0x61, "downloading", done, need_bytes);

    progress(0x81, "verifying update", 0, need_bytes);
    unsigned long long verified = 0;
    for (size_t i = 0; i < want.count && !state; i++) {
        struct entry *e = &want.files[i];
        if (!e->need)
            continue;
        char dest[PATH_MAX * 2];
        snprintf(dest, sizeof dest, "%s/%s", staging, e->path);
        uint64_t h = 0;
        unsigned long long size = 0;
        if (hash_file(dest, &h, &size) != 0 || size != e->size || h != e->hash)
            state = 0x602;
        verified += e->size;
    }
    progress(0x81, "verifying update", verified, need_bytes);
    if (state) {
        acf_write(dir, installed, want.build, 1026, branch, &c, 0);
        printf("Error! App '%s' state is 0x%x after update job.\n", app, state);
        exit_code = EXIT_OTHER;
        manifest_free(&want);
        manifest_free(&old);
        return;
    }

    progress(0x101, "committing", 0, need_bytes);
    unsigned long long staged = 0;
    for (size_t i = 0; i < want.count; i++) {
        struct entry *e = &want.files[i];
        if (!e->need)
            continue;
        char from[PATH_MAX * 2], to[PATH_MAX * 2];
        snprintf(from, sizeof from, "%s/%s", staging, e->path);
        snprintf(to, sizeof to, "%s/%s", dir, e->path);
        chmod(from, e->mode);
        if (mkdir_parent(to) != 0 || rename(from, to) != 0) {
            state = errno == ENOSPC ? 0x202 : 0x606;
            break;
        }
        staged += e->size;
    }
    if (!state && have_old) {
        for (size_t i = 0; i < old.count; i++) {
            if (manifest_find(&want, old.files[i].path))
                continue;
            char gone[PATH_MAX * 2];
            snprintf(gone, sizeof gone, "%s/%s", dir, old.files[i].path);
            unlink(gone);
            prune_parents(dir, old.files[i].path);
        }
    }
    c.staged = staged;
    if (state) {
        acf_write(dir, installed, want.build, 1026, branch, &c, 0);
        printf("Error! App '%s' state is 0x%x after update job.\n", app, state);
        exit_code = EXIT_OTHER;
        manifest_free(&want);
        manifest_free(&old);
        return;
    }
    progress(0x101, "committing", staged, need_bytes);
    nftw(staging, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    char downloading[PATH_MAX + 32];
    snprintf(downloading, sizeof downloading, "%s/downloading", steamapps);
    rmdir(downloading);

    char cache[PATH_MAX + 32];
    snprintf(cache, sizeof cache, "%s/depotcache", steamapps);
    mkdir_p(cache, 0755);
    manifest_text_write(new_path, &want);
    if (installed && installed != want.build)
        unlink(old_path);
    c.size_on_disk = total_size;
    acf_write(dir, want.build, want.build, 4, branch, &c, want.build);
    printf("Success! App '%s' fully installed.\n", app);
    manifest_free(&want);
    manifest_free(&old);
}

/* ---------------------------------------------------------------- command line */

static int is_command(const char *arg)
{
    return arg[0] == '+';
}

/* One console command with its arguments. Returns 0 to go on, -1 after `quit`, or the exit
 * status to end with (a failed login ends the run, as the real one does). */
static int run_command(const char *cmd, int nargs, char **args, int depth);

/* `runscript FILE`: one console command per line (`//` comments and blank lines skipped), as
 * Valve's SteamCMD takes them (Valve developer wiki, "SteamCMD": "+runscript"). */
static int run_script(const char *path, int depth)
{
    if (depth > 4) {
        printf("runscript: nested too deep\n");
        return 0;
    }
    size_t len = 0;
    char *text = read_file(path, &len);
    if (!text) {
        printf("Failed to open script file \"%s\"\n", path);
        return 0;
    }
    int rc = 0;
    char *lines = NULL;
    for (char *line = strtok_r(text, "\n", &lines); line && rc == 0;
         line = strtok_r(NULL, "\n", &lines)) {
        char *save = NULL, *words[32];
        int n = 0;
        for (char *w = strtok_r(line, " \t\r", &save); w && n < 32; w = strtok_r(NULL, " \t\r", &save))
            words[n++] = w;
        if (n == 0 || strncmp(words[0], "//", 2) == 0)
            continue;
        const char *cmd = words[0][0] == '+' ? words[0] + 1 : words[0];
        rc = run_command(cmd, n - 1, words + 1, depth + 1);
    }
    free(text);
    return rc;
}

static int run_command(const char *cmd, int nargs, char **args, int depth)
{
    const char *a1 = nargs >= 1 ? args[0] : NULL;
    const char *a2 = nargs >= 2 ? args[1] : NULL;
    const char *a3 = nargs >= 3 ? args[2] : NULL;

    if (cmd[0] == '@') {
        printf("\"%s\" = \"%s\"\n", cmd, a1 ? a1 : "");
        if (strcmp(cmd, "@NoPromptForPassword") == 0)
            no_prompt = a1 && atoi(a1) != 0;
        else if (strcmp(cmd, "@sSteamCmdForcePlatformType") == 0 && a1)
            snprintf(platform, sizeof platform, "%s", a1);
    } else if (strcmp(cmd, "force_install_dir") == 0) {
        if (logged_in) {
            printf("Please use force_install_dir before logon!\n");
        } else if (a1) {
            if (a1[0] == '/')
                snprintf(install_dir, sizeof install_dir, "%s", a1);
            else {
                char cwd[DIR_MAX / 2];
                if (getcwd(cwd, sizeof cwd))
                    snprintf(install_dir, sizeof install_dir, "%s/%s", cwd, a1);
            }
        }
    } else if (strcmp(cmd, "login") == 0) {
        if (!a1) {
            printf("usage: login <username> [<password>] [<Steam guard code>]\n");
            return 0;
        }
        int rc = do_login(a1, a2, a3);
        if (rc)
            return rc;
    } else if (strcmp(cmd, "app_update") == 0) {
        const char *beta = NULL, *betapassword = NULL;
        int validate = 0;
        for (int k = 1; k < nargs; k++) {
            if (strcmp(args[k], "-beta") == 0 && k + 1 < nargs)
                beta = args[++k];
            else if (strcmp(args[k], "-betapassword") == 0 && k + 1 < nargs)
                betapassword = args[++k];
            else if (strcmp(args[k], "validate") == 0)
                validate = 1;
        }
        if (!a1)
            printf("usage: app_update <appid> [-beta <betaname>] [-betapassword <password>] [validate]\n");
        else
            app_update(a1, beta, betapassword, validate);
    } else if (strcmp(cmd, "app_info_update") == 0) {
        app_info_update();
    } else if (strcmp(cmd, "app_info_print") == 0) {
        if (a1)
            app_info_print(a1);
    } else if (strcmp(cmd, "runscript") == 0) {
        if (a1)
            return run_script(a1, depth);
        printf("usage: runscript <file>\n");
    } else if (strcmp(cmd, "quit") == 0) {
        return -1;
    } else {
        printf("Unknown command \"%s\"\n", cmd);
    }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    find_steamroot();
    read_standin_cfg();
    banner();

    for (int i = 1; i < argc; i++) {
        if (!is_command(argv[i]))
            continue;
        const char *cmd = argv[i] + 1;
        /* the command's arguments: everything up to the next +command */
        int first = i + 1, last = i;
        while (last + 1 < argc && !is_command(argv[last + 1]))
            last++;
        i = last;
        int rc = run_command(cmd, last - first + 1, argv + first, 0);
        fflush(stdout);
        if (rc == -1)
            break;
        if (rc > 0)
            return rc;
    }
    printf("Unloading Steam API...OK\n");
    fflush(stdout);
    return exit_code;
}
