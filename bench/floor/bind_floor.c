/* The floor of a refused start: bind the port exactly as the gateway does (an IPv4
 * TCP socket with SO_REUSEADDR and close-on-exec, never SO_REUSEPORT) and exit 78
 * when it is in use. Nothing else: no runtime, no probe of the holder. The benchmark
 * compiles it with `cc -O2` and times its exec -> exit beside the gateway's refused
 * start, so that the ratio shows what start-up costs above the kernel's own work.
 * Usage: bind-floor PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fputs("usage: bind-floor PORT\n", stderr);
        return 2;
    }
    long port = strtol(argv[1], NULL, 10);
    if (port < 1 || port > 65535) {
        fputs("bind-floor: PORT must be 1-65535\n", stderr);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("bind-floor: socket");
        return 71;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
        perror("bind-floor: SO_REUSEADDR");
        return 71;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 1024) != 0) {
        int in_use = errno == EADDRINUSE;
        fprintf(stderr, "bind-floor: 127.0.0.1:%ld: %s\n", port, strerror(errno));
        return in_use ? 78 : 71;
    }
    return 0;
}
