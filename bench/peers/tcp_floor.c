/* What loopback TCP itself can do on this machine: the floor under any TCP collective (ours, gloo, OpenMPI's tcp btl).
 *
 * Build: gcc -O2 -o /tmp/tcp_floor bench/peers/tcp_floor.c -lpthread
 * Run:   /tmp/tcp_floor [bytes-each-way (default 8388608)] [pingpong-bytes (default 4096)]
 *
 * Two processes joined by one loopback socket. "exchange": both send N bytes while receiving N bytes (a 2-rank ring
 * allreduce of 2N bytes does this twice: reduce-scatter, then allgather). "pingpong": both send M bytes then receive M
 * bytes with blocking calls, the whole of a 2-rank small allreduce. Best and median of the repetitions are printed.
 */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static size_t N, M;
static int S;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

static void send_all(int s, const char *b, size_t n) {
    for (size_t o = 0; o < n;) { ssize_t k = send(s, b + o, n - o, 0); if (k <= 0) { perror("send"); exit(1); } o += k; }
}
static void recv_all(int s, char *b, size_t n) {
    for (size_t o = 0; o < n;) { ssize_t k = recv(s, b + o, n - o, 0); if (k <= 0) { perror("recv"); exit(1); } o += k; }
}
static void *sender(void *p) { send_all(S, p, N); return 0; }

static void run(int s, int leader) {
    S = s;
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char *a = malloc(N), *b = malloc(N);
    memset(a, 1, N);
    double t[9];
    for (int i = 0; i < 9; i++) {
        double t0 = now();
        pthread_t th;
        pthread_create(&th, 0, sender, a);
        recv_all(s, b, N);
        pthread_join(th, 0);
        t[i] = now() - t0;
    }
    qsort(t, 9, sizeof t[0], cmp);
    if (leader) printf("exchange %zu bytes each way: best %.2f ms, median %.2f ms (%.2f GB/s per direction at the median)\n", N, t[0] * 1e3, t[4] * 1e3, N / t[4] / 1e9);
    double p[5];
    for (int r = 0; r < 5; r++) {
        int it = 2000;
        double t0 = now();
        for (int i = 0; i < it; i++) { send_all(s, a, M); recv_all(s, b, M); }
        p[r] = (now() - t0) / it;
    }
    qsort(p, 5, sizeof p[0], cmp);
    if (leader) printf("pingpong %zu bytes (both send, then receive): best %.1f us, median %.1f us\n", M, p[0] * 1e6, p[2] * 1e6);
}

int main(int argc, char **argv) {
    N = argc > 1 ? strtoul(argv[1], 0, 10) : 8u << 20;
    M = argc > 2 ? strtoul(argv[2], 0, 10) : 4096;
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (void *)&addr, sizeof addr) || listen(l, 1)) { perror("bind"); return 1; }
    socklen_t len = sizeof addr;
    getsockname(l, (void *)&addr, &len);
    if (fork() == 0) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (void *)&addr, sizeof addr)) { perror("connect"); return 1; }
        run(s, 0);
        return 0;
    }
    int s = accept(l, 0, 0);
    run(s, 1);
    wait(0);
    return 0;
}
