/* campus-delay: a user-space delay line for bench/campus.
 *
 * This kernel has no sch_netem and no nft `queue` expression, so bench/campus sends every packet
 * crossing the campus veth to an NFQUEUE with legacy iptables (xt NFQUEUE target) and this
 * program holds each one for DELAY_US microseconds before accepting it. The delay is constant, so
 * the packets leave in arrival order (FIFO) and one batch verdict releases everything that is due.
 * Only packet metadata is copied to user space (NFQNL_COPY_META).
 *
 *   campus-delay QUEUE_NUM DELAY_US        (run inside the namespace that holds the iptables rule)
 *
 * Build: cc -O2 -o campus-delay campus-delay.c -lnetfilter_queue   (libnetfilter-queue-dev)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>


#define RING (1u << 20) /* packets held at once; the kernel queue is capped to the same */

static uint32_t ids[RING];
static uint64_t due[RING];
static unsigned head, tail; /* ring indices: [head, tail) are held */
static uint64_t delay_ns, held_total, overflow_total;
static volatile sig_atomic_t stop;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data) {
    (void)msg;
    (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph)
        return 0;
    uint32_t id = ntohl(ph->packet_id);
    if (tail - head >= RING) { /* cannot hold it: let it through undelayed rather than stall */
        overflow_total++;
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    }
    ids[tail % RING] = id;
    due[tail % RING] = now_ns() + delay_ns;
    tail++;
    held_total++;
    return 0;
}

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s QUEUE_NUM DELAY_US\n", argv[0]);
        return 2;
    }
    int qnum = atoi(argv[1]);
    delay_ns = strtoull(argv[2], NULL, 10) * 1000u;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    struct nfq_handle *h = nfq_open();
    if (!h) {
        perror("nfq_open");
        return 1;
    }
    nfq_unbind_pf(h, AF_INET); /* harmless on current kernels */
    if (nfq_bind_pf(h, AF_INET) < 0) {
        perror("nfq_bind_pf");
        return 1;
    }
    struct nfq_q_handle *qh = nfq_create_queue(h, qnum, on_packet, NULL);
    if (!qh) {
        perror("nfq_create_queue");
        return 1;
    }
    if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) {
        perror("nfq_set_mode");
        return 1;
    }
    nfq_set_queue_maxlen(qh, RING);
    int fd = nfq_fd(h);
    int one = 1, buf = 64 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    fprintf(stderr, "campus-delay: queue %d, %llu us\n", qnum, (unsigned long long)(delay_ns / 1000));

    static char pkt[65536] __attribute__((aligned));
    while (!stop) {
        /* release everything that is due with one batch verdict (ids are monotonic, FIFO) */
        uint64_t t = now_ns();
        if (head != tail && due[head % RING] <= t) {
            uint32_t last = 0;
            while (head != tail && due[head % RING] <= t)
                last = ids[head++ % RING];
            nfq_set_verdict_batch(qh, last, NF_ACCEPT);
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 500000000}, *tsp = &ts;
        if (head != tail) {
            uint64_t wait = due[head % RING] > t ? due[head % RING] - t : 0;
            ts.tv_sec = (time_t)(wait / 1000000000u);
            ts.tv_nsec = (long)(wait % 1000000000u);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = ppoll(&p, 1, tsp, NULL); /* ns resolution: no 1 ms rounding, no spinning */
        if (r < 0 && errno != EINTR)
            break;
        for (;;) {
            ssize_t n = recv(fd, pkt, sizeof pkt, MSG_DONTWAIT);
            if (n > 0) {
                nfq_handle_packet(h, pkt, (int)n);
                continue;
            }
            if (n < 0 && errno == ENOBUFS)
                continue;
            break;
        }
    }
    /* let every held packet go before exiting */
    if (head != tail)
        nfq_set_verdict_batch(qh, ids[(tail - 1) % RING], NF_ACCEPT);
    fprintf(stderr, "campus-delay: queue %d: %llu packets delayed, %llu passed undelayed (ring full)\n",
            qnum, (unsigned long long)held_total, (unsigned long long)overflow_total);
    nfq_destroy_queue(qh);
    nfq_close(h);
    return 0;
}
