/*
 * The load generator: CLIENTS threads, each sending one request line and reading one response
 * line at a time over a Unix socket, timing every exchange with CLOCK_MONOTONIC.
 *
 *   cc -O2 -pthread -o load load.c
 *   ./load SOCKET REQUEST_FILE CLIENTS MODE MAX_REQUESTS SECONDS WARMUP
 *
 * MODE is "kept" (one connection per client for the whole run) or "fresh" (connect, ask,
 * close, for every request). Each client stops after MAX_REQUESTS timed requests or SECONDS,
 * whichever comes first, after WARMUP untimed ones. The clients start together (a barrier)
 * once each has connected and warmed up. It prints one JSON object: the count, the wall time
 * of the timed part, the errors (a response without "ok":true, or a failed connection), and
 * every latency in microseconds, so that the caller computes the statistics it wants.
 *
 * Written in C so that the generator costs the machine far less than the servers it measures:
 * a Python generator would be the bottleneck against the echo floor and flatter its ratios.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define READ_BYTES 65536

typedef struct {
    int index;
    long max_requests;
    long warmup;
    double *latencies;
    long count;
    long errors;
} client_t;

static const char *socket_path;
static char *request;
static size_t request_size;
static int fresh;
static double seconds;
static pthread_barrier_t barrier;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int dial(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un address;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    strncpy(address.sun_path, socket_path, sizeof(address.sun_path) - 1);
    for (int attempt = 0; attempt < 50; attempt++) {
        if (connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0) {
            return fd;
        }
        if (errno != EAGAIN && errno != ECONNREFUSED) {
            break;
        }
        usleep(1000); /* a full backlog: try again shortly */
    }
    close(fd);
    return -1;
}

/* Send the request and read up to the newline; 1 when the response says "ok":true. */
static int exchange(int fd, char *buffer) {
    const char *data = request;
    size_t left = request_size;
    while (left > 0) {
        ssize_t n = write(fd, data, left);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        data += n;
        left -= (size_t)n;
    }
    int ok = 0;
    int first = 1;
    for (;;) {
        ssize_t n = read(fd, buffer, READ_BYTES - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        buffer[n] = '\0';
        if (first) {
            ok = strstr(buffer, "\"ok\":true") != NULL;
            first = 0;
        }
        if (buffer[n - 1] == '\n') {
            return ok;
        }
    }
}

static void *run_client(void *arg) {
    client_t *client = arg;
    char *buffer = malloc(READ_BYTES);
    int fd = fresh ? -1 : dial();
    if (!fresh && fd < 0) {
        client->errors++;
    }
    for (long i = 0; i < client->warmup && (fresh || fd >= 0); i++) {
        if (fresh) {
            fd = dial();
        }
        if (fd >= 0 && exchange(fd, buffer) != 1) {
            client->errors++;
        }
        if (fresh && fd >= 0) {
            close(fd);
        }
    }
    pthread_barrier_wait(&barrier);
    double deadline = now() + seconds;
    while (client->count < client->max_requests && (fresh || fd >= 0)) {
        double t0 = now();
        if (t0 > deadline) {
            break;
        }
        if (fresh) {
            fd = dial();
            if (fd < 0) {
                client->errors++;
                continue;
            }
        }
        int ok = exchange(fd, buffer);
        if (fresh) {
            close(fd);
        }
        client->latencies[client->count++] = (now() - t0) * 1e6;
        if (ok != 1) {
            client->errors++;
            if (ok < 0 && !fresh) {
                close(fd);
                fd = dial();
            }
        }
    }
    if (!fresh && fd >= 0) {
        close(fd);
    }
    free(buffer);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr,
                "usage: %s SOCKET REQUEST_FILE CLIENTS kept|fresh MAX_REQUESTS SECONDS WARMUP\n",
                argv[0]);
        return 2;
    }
    socket_path = argv[1];
    FILE *f = fopen(argv[2], "rb");
    if (f == NULL) {
        perror("request file");
        return 1;
    }
    request = malloc(READ_BYTES);
    request_size = fread(request, 1, READ_BYTES, f);
    fclose(f);
    int clients = atoi(argv[3]);
    fresh = strcmp(argv[4], "fresh") == 0;
    long max_requests = atol(argv[5]);
    seconds = atof(argv[6]);
    long warmup = atol(argv[7]);

    client_t *all = calloc((size_t)clients, sizeof(client_t));
    pthread_t *threads = calloc((size_t)clients, sizeof(pthread_t));
    pthread_barrier_init(&barrier, NULL, (unsigned)clients + 1);
    for (int i = 0; i < clients; i++) {
        all[i].index = i;
        all[i].max_requests = max_requests;
        all[i].warmup = warmup;
        all[i].latencies = malloc(sizeof(double) * (size_t)max_requests);
        pthread_create(&threads[i], NULL, run_client, &all[i]);
    }
    pthread_barrier_wait(&barrier);
    double started = now();
    for (int i = 0; i < clients; i++) {
        pthread_join(threads[i], NULL);
    }
    double elapsed = now() - started;
    long count = 0;
    long errors = 0;
    for (int i = 0; i < clients; i++) {
        count += all[i].count;
        errors += all[i].errors;
    }
    printf("{\"count\":%ld,\"seconds\":%.6f,\"errors\":%ld,\"latencies_us\":[", count, elapsed,
           errors);
    int comma = 0;
    for (int i = 0; i < clients; i++) {
        for (long j = 0; j < all[i].count; j++) {
            printf(comma ? ",%.2f" : "%.2f", all[i].latencies[j]);
            comma = 1;
        }
        free(all[i].latencies);
    }
    printf("]}\n");
    free(all);
    free(threads);
    free(request);
    return 0;
}
