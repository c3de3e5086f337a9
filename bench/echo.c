/*
 * The physical limit, for the record: a single-threaded epoll server on a Unix socket that
 * answers every request line with one canned response line, without parsing anything.
 *
 *   cc -O2 -o echo echo.c && ./echo SOCKET RESPONSE_FILE
 *
 * RESPONSE_FILE holds the response line, newline included. The server prints "ready" on
 * stdout once it listens, and exits on SIGTERM or SIGINT. bench/run.py compiles it into a
 * temporary folder at run time; no binary is ever kept in the repository.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define READ_BYTES 65536

static volatile sig_atomic_t stopping = 0;

static void on_signal(int signum) {
    (void)signum;
    stopping = 1;
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long length = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)length);
    if (data == NULL || fread(data, 1, (size_t)length, f) != (size_t)length) {
        fclose(f);
        free(data);
        return NULL;
    }
    fclose(f);
    *size = (size_t)length;
    return data;
}

static int write_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET RESPONSE_FILE\n", argv[0]);
        return 2;
    }
    size_t response_size = 0;
    char *response = read_file(argv[2], &response_size);
    if (response == NULL) {
        perror("response file");
        return 1;
    }
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_signal;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un address;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    strncpy(address.sun_path, argv[1], sizeof(address.sun_path) - 1);
    unlink(argv[1]);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) < 0 ||
        listen(listener, 256) < 0) {
        perror("listen");
        return 1;
    }
    int poller = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(poller, EPOLL_CTL_ADD, listener, &event);
    printf("ready\n");
    fflush(stdout);

    char *buffer = malloc(READ_BYTES);
    struct epoll_event events[MAX_EVENTS];
    while (!stopping) {
        int ready = epoll_wait(poller, events, MAX_EVENTS, 200);
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int client;
                while ((client = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
                    struct epoll_event added = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(poller, EPOLL_CTL_ADD, client, &added);
                }
                continue;
            }
            ssize_t n = read(fd, buffer, READ_BYTES);
            if (n <= 0) {
                epoll_ctl(poller, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                continue;
            }
            for (ssize_t j = 0; j < n; j++) {
                if (buffer[j] == '\n' && write_all(fd, response, response_size) < 0) {
                    break;
                }
            }
        }
    }
    close(listener);
    unlink(argv[1]);
    free(buffer);
    free(response);
    return 0;
}
