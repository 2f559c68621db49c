/* The floors of a refused start. The benchmark compiles this file with `cc -O2` and
 * times its exec -> exit beside the gateway's refused start, so that the ratio shows
 * what start-up costs above the kernel's own work. Two modes:
 *
 *   bind-floor PORT          bind the port exactly as the gateway does (an IPv4 TCP
 *                            socket with SO_REUSEADDR and close-on-exec, never
 *                            SO_REUSEPORT) and exit 78 when it is in use. Nothing
 *                            else: no runtime, no probe of the holder.
 *   bind-floor --probe PORT  the same work as the gateway's refused start: the bind,
 *                            the first line on stderr at once, then one `/healthz`
 *                            probe of the holder within 150 ms (connect, `GET /healthz
 *                            HTTP/1.1`, read the whole answer by its Content-Length,
 *                            check it is a gateway's: status 200 and `"service":
 *                            "gateway"` in the body), one detail line, exit 78 for a
 *                            gateway and 75 for anything else.
 *
 * Both print to stderr what they found; the benchmark discards it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* The contract's budget for the holder's answer. */
#define PROBE_BUDGET_MS 150
/* A larger answer is not a gateway's (the gateway's own limit for the body). */
#define MAX_ANSWER (16 * 1024 + 1024)

static struct sockaddr_in loopback(long port) {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

/* Case-insensitive search for a header name at the start of a line; returns its value. */
static const char *header(const char *head, const char *name) {
    size_t len = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, name, len) == 0 && line[2 + len] == ':') {
            return line + 2 + len + 1;
        }
    }
    return NULL;
}

/* Asks 127.0.0.1:PORT for /healthz; 1 when a gateway answered, 0 otherwise. */
static int holder_is_a_gateway(long port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    struct timeval budget = {0, PROBE_BUDGET_MS * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &budget, sizeof budget);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &budget, sizeof budget);
    struct sockaddr_in addr = loopback(port);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return 0;
    }
    char request[96];
    int request_len = snprintf(request, sizeof request,
                               "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1:%ld\r\n\r\n", port);
    if (write(fd, request, (size_t)request_len) != request_len) {
        close(fd);
        return 0;
    }
    static char answer[MAX_ANSWER + 1];
    size_t got = 0;
    long body_len = -1;
    const char *body = NULL;
    while (got < MAX_ANSWER) {
        ssize_t n = read(fd, answer + got, MAX_ANSWER - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        answer[got] = '\0';
        if (body == NULL) {
            char *end = strstr(answer, "\r\n\r\n");
            if (end == NULL) {
                continue;
            }
            end[2] = '\0'; /* the head ends with its last header's CRLF */
            const char *length = header(answer, "content-length");
            body_len = length == NULL ? -1 : strtol(length, NULL, 10);
            end[2] = '\r';
            body = end + 4;
            if (body_len < 0) {
                break;
            }
        }
        if ((long)(answer + got - body) >= body_len) {
            break;
        }
    }
    close(fd);
    return body != NULL && body_len >= 0 && (long)(answer + got - body) >= body_len &&
           strncmp(answer, "HTTP/1.1 200 ", 13) == 0 &&
           strstr(body, "\"service\":\"gateway\"") != NULL;
}

int main(int argc, char **argv) {
    int probe = argc == 3 && strcmp(argv[1], "--probe") == 0;
    if (argc != 2 && !probe) {
        fputs("usage: bind-floor [--probe] PORT\n", stderr);
        return 2;
    }
    long port = strtol(argv[argc - 1], NULL, 10);
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
    struct sockaddr_in addr = loopback(port);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(fd, 1024) == 0) {
        return 0;
    }
    if (errno != EADDRINUSE) {
        fprintf(stderr, "bind-floor: 127.0.0.1:%ld: %s\n", port, strerror(errno));
        return 71;
    }
    close(fd);
    fprintf(stderr, "bind-floor: 127.0.0.1:%ld is already in use\n", port);
    if (!probe) {
        return 78;
    }
    if (holder_is_a_gateway(port)) {
        fputs("  held by a gateway\n", stderr);
        return 78;
    }
    fputs("  held by something else\n", stderr);
    return 75;
}
