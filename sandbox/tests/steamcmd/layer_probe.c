/* The i386 test program of privileged_steamcmd (built there with `gcc -m32`; not installed).
 * Stands in for SteamCMD's file work: run as `layer_probe layered|install [PATH]...`, it reads,
 * changes, deletes and creates files in /overlay, writes into $HOME, tries to write each PATH
 * (or, for `tcp:PORT`, to connect to 127.0.0.1:PORT), and prints one "what result" line per
 * step (errno names, so the test can compare). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *result(int ok) { return ok ? "ok" : strerrorname_np(errno); }

static int write_file(const char *path, const char *mode, const char *text) {
    FILE *f = fopen(path, mode);
    if (!f)
        return 0;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

static void read_file(const char *what, const char *path) {
    char buf[256] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s %s\n", what, strerrorname_np(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0 && buf[n - 1] == '\n')
        buf[n - 1] = 0;
    printf("%s %s\n", what, buf);
}

static void owner(const char *what, const char *path) {
    struct stat st;
    if (stat(path, &st))
        printf("%s %s\n", what, strerrorname_np(errno));
    else
        printf("%s %u:%u\n", what, st.st_uid, st.st_gid);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("pointer bits %zu\n", sizeof(void *) * 8);
    printf("uid %u\n", getuid());
    printf("HOME %s\n", getenv("HOME"));
    char cwd[256];
    printf("cwd %s\n", getcwd(cwd, sizeof cwd));
    if (argc > 1 && strcmp(argv[1], "layered") == 0) {
        owner("owner /overlay", "/overlay");
        owner("owner change.txt", "/overlay/change.txt");
        read_file("read bottom.txt", "/overlay/bottom.txt");
        read_file("read keep/deep.txt", "/overlay/keep/deep.txt");
        printf("append change.txt %s\n", result(write_file("/overlay/change.txt", "a", "changed\n")));
        read_file("read change.txt", "/overlay/change.txt");
        printf("unlink gone.txt %s\n", result(unlink("/overlay/gone.txt") == 0));
        owner("owner gone.txt", "/overlay/gone.txt");
        printf("mkdir made %s\n", result(mkdir("/overlay/made", 0755) == 0));
        printf("create made/new.txt %s\n",
               result(write_file("/overlay/made/new.txt", "w", "new\n")));
        owner("owner made/new.txt", "/overlay/made/new.txt");
    } else {
        printf("mkdir bin %s\n", result(mkdir("/overlay/bin", 0755) == 0));
        printf("create bin/installed.txt %s\n",
               result(write_file("/overlay/bin/installed.txt", "w", "installed\n")));
        owner("owner bin/installed.txt", "/overlay/bin/installed.txt");
    }
    char path[512];
    snprintf(path, sizeof path, "%s/home.txt", getenv("HOME"));
    printf("write $HOME/home.txt %s\n", result(write_file(path, "w", "home\n")));
    owner("owner $HOME/home.txt", path);
    /* glibc's i386 socket functions go through socketcall (Debian builds it for Linux >= 3.2). */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    printf("socket %s\n", result(s >= 0));
    if (s >= 0)
        close(s);
    for (int i = 2; i < argc; i++) {
        if (strncmp(argv[i], "tcp:", 4) == 0) {
            struct sockaddr_in addr = {.sin_family = AF_INET};
            addr.sin_port = htons((unsigned short)atoi(argv[i] + 4));
            addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            int ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
            printf("connect %s %s\n", argv[i], result(ok));
            if (fd >= 0)
                close(fd);
        } else {
            printf("write %s %s\n", argv[i], result(write_file(argv[i], "w", "x\n")));
        }
    }
    return 0;
}
