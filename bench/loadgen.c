/*
 * bench/loadgen.c: the bench's load generator in C, so that the figures of the
 * paced and flood scenarios are the server's and not those of its Deno load
 * workers: on a 2-core machine they share the cores with the server, and the
 * workers took 38% of them in flood-5000 where this takes 13%, and their
 * receive times waited for a JavaScript event loop. One thread, epoll,
 * nonblocking sockets, TCP_NODELAY. Driven by bench/load/c_load.ts.
 *
 * It does what the Deno workers (bench/load/worker/) do, with the same
 * semantics and wire format, so its figures can be compared with theirs:
 *
 *   - connect: N clients to HOST:PORT, at most `inflight` (8) not yet ready
 *     at a time. A client is ready once it received its first line (chat_server's
 *     welcome, ncat's announce), or with `ready=connected` once its connect
 *     completed (a relay that greets nobody).
 *   - run: the first S clients send `lines` lines of `bytes` bytes each,
 *     `@<sender>:<seq>:<sendTime>:<padLength>:xxx…x$\n` (sendTime in
 *     microseconds since the run's start instant `at`), at `rate` lines/s per
 *     sender spread evenly over each period (0: flat out, `batch` lines per
 *     write; a late paced sender catches up in batches too). Every client
 *     finds payloads anywhere in a line, skips chat_server's history block and
 *     counts deliveries, duplicates, reordering, loss and latency, into a
 *     histogram with bench/common/histogram.ts's buckets.
 *   - The run ends by itself: every expected delivery arrived and every sender
 *     is done ("done"), its deadline passed ("deadline"), or no new delivery
 *     arrived for `stall` ms ("stall"), the rules of bench/load/group.ts.
 *
 * Control: one command a line on stdin, one JSON line a reply on stdout.
 *
 *   hello                       -> {"pid":P,"fdLimit":F}
 *   clock                       -> {"now":MS}        (CLOCK_REALTIME, ms)
 *   connect [host=127.0.0.1] port=P count=N [timeout=60000] [rbuf=16384]
 *           [inflight=8] [ready=line|connected]
 *                               -> {"requested","ready","failed","open","ms","firstError"}
 *   run [at=now+200ms] senders=S lines=L [bytes=64] [rate=0] [batch=32]
 *       [drain=3000] [max=60000] [stall=3000]
 *                               -> {"expected":E,"senders":S} at once, then at
 *                                  the run's end one line with its result: the
 *                                  fields of a TrafficResult (bench/load/group.ts),
 *                                  times in CLOCK_REALTIME ms, `hist` as
 *                                  {"buckets":[[index,count],...],total,max,min,sum}
 *   close                       -> {"closed":N}     (every client closed)
 *
 * A bad command gets {"error":"..."}. Commands are taken one at a time: one
 * that arrives during a connect or run waits for it. When stdin closes, the
 * commands already read are still done (a run ends by its own deadline), then
 * it exits: a dead coordinator never leaves it running.
 *
 *   cc -O2 -Wall -Wextra -o loadgen bench/loadgen.c
 *   loadgen [--rbuf BYTES] [--inflight K] [--ready line|connected]   (defaults for connect)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* epoll data tags for the two fds that are not clients. */
#define TAG_STDIN UINT64_MAX
#define TAG_TIMER (UINT64_MAX - 1)
#define MAX_EVENTS 1024
/* Reads per readiness event before other sockets get their turn. */
#define READS_PER_EVENT 4
/* Batches a sender writes per writable event: the receivers get their turn. */
#define BATCHES_PER_EVENT 16

static void *xmalloc(size_t size) {
  void *p = malloc(size ? size : 1);
  if (!p) {
    fprintf(stderr, "loadgen: out of memory\n");
    exit(1);
  }
  return p;
}

static void *xrealloc(void *old, size_t size) {
  void *p = realloc(old, size ? size : 1);
  if (!p) {
    fprintf(stderr, "loadgen: out of memory\n");
    exit(1);
  }
  return p;
}

static void *xcalloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size);
  if (!p) {
    fprintf(stderr, "loadgen: out of memory\n");
    exit(1);
  }
  return p;
}

/* ------------------------------------------------------------- clocks --- */

/* Internal times are CLOCK_MONOTONIC microseconds (no jumps). What the
 * coordinator compares with its own clock (performance.timeOrigin +
 * performance.now(), i.e. wall-clock ms) is converted with the offset between
 * the two clocks, taken when a run starts. */
static int64_t mono_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int64_t real_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* CPU seconds (user + system) of this process. */
static double cpu_seconds(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/* ---------------------------------------------------------- histogram --- */

/* Exactly bench/common/histogram.ts: exact below 128 us, then 64 sub-buckets
 * per power of two up to 2^31 us, so the coordinator rebuilds a Histogram
 * from [index, count] pairs. */
#define H_LINEAR 128
#define H_SUB 64
#define H_BUCKETS (H_LINEAR + (31 - 7) * H_SUB)

typedef struct {
  uint64_t counts[H_BUCKETS];
  uint64_t total;
  int64_t max, min, sum;
} histogram_t;

static int bucket_of(int64_t micros) {
  if (micros < H_LINEAR) return micros < 0 ? 0 : (int)micros;
  uint32_t v = micros >= ((int64_t)1 << 31) ? 0x7fffffffu : (uint32_t)micros;
  int e = 31 - __builtin_clz(v); /* floor(log2 v), >= 7 */
  int shift = e - 6;
  return H_LINEAR + (e - 7) * H_SUB + (int)((v >> shift) - H_SUB);
}

static void hist_reset(histogram_t *h) {
  memset(h, 0, sizeof *h);
  h->min = INT64_MAX;
}

static void hist_record(histogram_t *h, int64_t micros) {
  h->counts[bucket_of(micros)]++;
  h->total++;
  h->sum += micros;
  if (micros > h->max) h->max = micros;
  if (micros < h->min) h->min = micros;
}

/* ------------------------------------------------------------ replies --- */

/* One reply is built here, then written to stdout whole. */
static char *out;
static size_t out_len, out_cap;

static void outf(const char *format, ...) {
  for (;;) {
    va_list args;
    va_start(args, format);
    int n = vsnprintf(out + out_len, out_cap - out_len, format, args);
    va_end(args);
    if (n < 0) return;
    if ((size_t)n < out_cap - out_len) {
      out_len += (size_t)n;
      return;
    }
    out_cap = (out_cap + (size_t)n + 1) * 2;
    out = xrealloc(out, out_cap);
  }
}

/* A JSON string: the few characters an error message may hold are escaped. */
static void out_json_string(const char *s) {
  outf("\"");
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') outf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) outf("\\u%04x", *s);
    else outf("%c", *s);
  }
  outf("\"");
}

/* Writes the reply built so far as one line; a closed stdout is not an error
 * here (the coordinator is gone; EOF on stdin ends us). */
static void reply_end(void) {
  outf("\n");
  size_t done = 0;
  while (done < out_len) {
    ssize_t n = write(STDOUT_FILENO, out + done, out_len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += (size_t)n;
  }
  out_len = 0;
}

static void reply_error(const char *message) {
  outf("{\"error\":");
  out_json_string(message);
  outf("}");
  reply_end();
}

static void out_histogram(const histogram_t *h) {
  outf("{\"buckets\":[");
  bool first = true;
  for (int i = 0; i < H_BUCKETS; i++) {
    if (!h->counts[i]) continue;
    outf("%s[%d,%llu]", first ? "" : ",", i, (unsigned long long)h->counts[i]);
    first = false;
  }
  outf("],\"total\":%llu,\"max\":%lld,\"min\":%lld,\"sum\":%lld}", (unsigned long long)h->total,
       (long long)h->max, (long long)(h->total ? h->min : 0), (long long)h->sum);
}

/* ------------------------------------------------------------ clients --- */

enum client_state {
  C_CONNECTING, /* connect() in progress */
  C_GREETING,   /* connected, waiting for the room's first line */
  C_READY,
  C_CLOSED, /* was connected, then closed (by either side) */
  C_FAILED, /* the connect failed */
};

typedef struct {
  int fd;
  uint8_t state;
  /* Counted in the current connect's in-flight clients (not yet ready). */
  bool pending;
  /* Inside chat_server's replay of recent lines to a newcomer. */
  bool in_history;
  /* Inside a line longer than the read buffer: dropped until its end. */
  bool skipping;
  /* Was open when the run started, so it is expected to receive. */
  bool in_run;
  /* Its global sender index when it sends in the current run, else -1. */
  int sender;
  /* The events asked of epoll now (EPOLLOUT only while a sender is blocked). */
  uint32_t events;
  uint32_t rbuf;
  /* An unfinished line, kept between reads (usually a few bytes). */
  char *tail;
  uint32_t tail_len, tail_cap;
  /* Per sender: a bitset of sequence numbers seen (stride bytes each), the
   * unique count and the highest seq; allocated at its first delivery. */
  uint8_t *seen;
  int32_t *counts;
  int32_t *max_seq;
} client_t;

static client_t *clients;
static size_t client_count, client_cap;
static int poller;
static int timer_fd;
/* Every read lands here, after the client's kept tail. */
static char *scratch;
static size_t scratch_size;
static char first_error[256];

static bool is_open(const client_t *c) {
  return c->state == C_GREETING || c->state == C_READY;
}

/* ---------------------------------------------------------------- run --- */

typedef struct {
  int client;
  int index;
  /* When its line 0 is due: the run's start plus its phase (us, monotonic). */
  double start_us;
  int due;     /* lines due so far */
  int written; /* lines written whole */
  bool done;
  /* The batch being written: bytes [off, len) of buf are not written yet. */
  char *buf;
  size_t len, off;
  int batch_to; /* written becomes this once the batch is out */
} sender_t;

static struct {
  bool configured; /* a run was started: payloads are checked against it */
  bool active;     /* ... and has not ended yet */
  int senders, lines, bytes, batch;
  double rate;
  int stride;
  int64_t at_us;       /* monotonic */
  int64_t offset_us;   /* realtime - monotonic */
  int64_t epoch_us;    /* the payload's time 0 (monotonic) */
  int64_t deadline_us; /* monotonic */
  int64_t stall_us;
  int64_t last_progress_us;
  uint64_t last_unique;
  uint64_t expected;
  int senders_done;
  double cpu0;
  sender_t *snd;
} R;

/* What one run counts; a new run starts them from zero. */
static struct {
  histogram_t hist;
  uint64_t unique, duplicates, reordered, garbled, echoes, foreign, notices, long_lines;
  uint64_t negative, bytes, sent, send_errors;
  int64_t first_recv, last_recv, first_send, last_send; /* monotonic us, 0 = none */
  double max_lag_ms;
} T;

/* ------------------------------------------------------------ connect --- */

static struct {
  bool active;
  struct sockaddr_in addr;
  int count, next;
  int inflight, max_inflight;
  int ready, failed;
  bool ready_on_connect;
  uint32_t rbuf;
  int64_t started_us, deadline_us;
} K;

/* Defaults for connect, from the command line. */
static uint32_t default_rbuf = 16 * 1024;
/* Clients connecting or waiting for their first line at once: 8, as the Deno
 * workers. ncat listens with a backlog of 10: more handshakes at once overflow
 * its accept queue, where the client's final ACK is dropped, so the client
 * believes it is connected while the server retries its SYN-ACK for up to
 * 31 s (with 200 in flight, 177 of 1,000 clients were still not greeted
 * after 15 s). */
static int default_inflight = 8;
static bool default_ready_on_connect = false;

static void epoll_set(int index, uint32_t events) {
  client_t *c = &clients[index];
  if (c->events == events) return;
  struct epoll_event e = {.events = events, .data.u64 = (uint64_t)index};
  epoll_ctl(poller, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e);
  c->events = events;
}

static void note_error(const char *what, int err) {
  if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s: %s", what, strerror(err));
}

/* A client that was ready (or waiting to be) leaves the connect's count. */
static void leave_pending(client_t *c) {
  if (!c->pending) return;
  c->pending = false;
  K.inflight--;
}

static void sender_stop(sender_t *s);

static void close_client(int index) {
  client_t *c = &clients[index];
  if (c->state == C_CLOSED || c->state == C_FAILED) return;
  close(c->fd); /* also takes it out of the epoll set */
  c->state = c->state == C_CONNECTING ? C_FAILED : C_CLOSED;
  c->events = 0;
  leave_pending(c);
  free(c->tail);
  c->tail = NULL;
  c->tail_len = c->tail_cap = 0;
  if (R.active && c->sender >= 0) sender_stop(&R.snd[c->sender]);
}

static void mark_ready(int index) {
  client_t *c = &clients[index];
  c->state = C_READY;
  if (c->pending) K.ready++;
  leave_pending(c);
}

static int new_client(uint32_t rbuf) {
  if (client_count == client_cap) {
    client_cap = client_cap ? client_cap * 2 : 1024;
    clients = xrealloc(clients, client_cap * sizeof *clients);
  }
  client_t *c = &clients[client_count];
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->sender = -1;
  c->rbuf = rbuf;
  c->state = C_FAILED;
  return (int)client_count++;
}

/* Starts one nonblocking connect; the result shows as EPOLLOUT. */
static void open_one(void) {
  int index = new_client(K.rbuf);
  client_t *c = &clients[index];
  K.next++;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    K.failed++;
    note_error("socket", errno);
    return;
  }
  /* Before connect, so not even the first line waits for an ACK. */
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->state = C_CONNECTING;
  c->pending = true;
  K.inflight++;
  if (connect(fd, (struct sockaddr *)&K.addr, sizeof K.addr) < 0 && errno != EINPROGRESS) {
    note_error("connect", errno);
    K.failed++;
    close_client(index);
    return;
  }
  epoll_set(index, EPOLLIN | EPOLLOUT);
}

/* The connect of a client finished (EPOLLOUT, or an error). */
static void connect_done(int index) {
  client_t *c = &clients[index];
  int err = 0;
  socklen_t size = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &size) < 0) err = errno;
  if (err) {
    note_error("connect", err);
    K.failed++;
    close_client(index);
    return;
  }
  c->state = C_GREETING;
  epoll_set(index, EPOLLIN);
  if (K.ready_on_connect) mark_ready(index);
}

static void reply_connect(void) {
  int open = 0;
  for (size_t i = 0; i < client_count; i++) {
    if (clients[i].state == C_GREETING || clients[i].state == C_READY) open++;
  }
  outf("{\"requested\":%d,\"ready\":%d,\"failed\":%d,\"open\":%d,\"ms\":%.3f,\"firstError\":",
       K.count, K.ready, K.failed, open, (double)(mono_us() - K.started_us) / 1000.0);
  out_json_string(first_error);
  outf("}");
  reply_end();
}

/* Opens more clients while few enough are in flight; ends the connect when
 * every client is ready, failed or closed, or at its deadline (clients still
 * connecting then fail; those still waiting for their first line stay open,
 * not ready, as the Deno workers leave them). */
static void connect_advance(void) {
  if (!K.active) return;
  int64_t now = mono_us();
  bool late = now >= K.deadline_us;
  while (!late && K.inflight < K.max_inflight && K.next < K.count) open_one();
  if (!late && (K.next < K.count || K.inflight > 0)) return;
  for (size_t i = 0; i < client_count; i++) {
    client_t *c = &clients[i];
    if (!c->pending) continue;
    if (c->state == C_CONNECTING) {
      K.failed++;
      note_error("connect", ETIMEDOUT);
      close_client((int)i);
    } else {
      leave_pending(c);
    }
  }
  K.active = false;
  reply_connect();
}

/* ------------------------------------------------------------ receive --- */

/* Decimal digits at buf[*p..end); -1 when none or more than 17 (the Deno
 * parser's limit). Leaves *p after them. */
static int64_t parse_number(const char *buf, size_t *p, size_t end) {
  size_t start = *p, i = start;
  int64_t value = 0;
  while (i < end && buf[i] >= '0' && buf[i] <= '9' && i - start < 18) {
    value = value * 10 + (buf[i] - '0');
    i++;
  }
  *p = i;
  return i == start || i - start > 17 ? -1 : value;
}

static void deliver(int index, int64_t sender, int64_t seq, int64_t sent, int64_t recv) {
  client_t *c = &clients[index];
  if (!R.configured || sender >= R.senders || seq >= R.lines) {
    T.foreign++;
    return;
  }
  if (sender == c->sender) {
    T.echoes++; /* the room sent a sender its own line back */
    return;
  }
  if (!c->seen) {
    c->seen = xcalloc((size_t)R.senders * (size_t)R.stride, 1);
    c->counts = xcalloc((size_t)R.senders, sizeof *c->counts);
    c->max_seq = xmalloc((size_t)R.senders * sizeof *c->max_seq);
    for (int s = 0; s < R.senders; s++) c->max_seq[s] = -1;
  }
  size_t byte = (size_t)sender * (size_t)R.stride + (size_t)(seq >> 3);
  uint8_t mask = (uint8_t)(1u << (seq & 7));
  if (c->seen[byte] & mask) {
    T.duplicates++;
    return;
  }
  c->seen[byte] |= mask;
  c->counts[sender]++;
  if (seq < c->max_seq[sender]) T.reordered++;
  else c->max_seq[sender] = (int32_t)seq;
  T.unique++;
  int64_t latency = recv - (R.epoch_us + sent);
  if (latency < 0) T.negative++;
  hist_record(&T.hist, latency < 0 ? 0 : latency);
  if (T.first_recv == 0 || recv < T.first_recv) T.first_recv = recv;
  if (recv > T.last_recv) T.last_recv = recv;
}

/* One payload starting at '@' (buf[at]); the index after it, or -1 when it
 * did not arrive whole (the `$` must sit exactly padLength bytes after the
 * last colon). */
static int64_t parse_payload(int index, const char *buf, size_t at, size_t end, int64_t recv) {
  size_t p = at + 1;
  int64_t f[4]; /* sender, seq, sendTime, padLength */
  for (int i = 0; i < 4; i++) {
    f[i] = parse_number(buf, &p, end);
    if (f[i] < 0 || p >= end || buf[p] != ':') return -1;
    p++;
  }
  if (f[3] >= (int64_t)(end - p) || buf[p + (size_t)f[3]] != '$') return -1;
  deliver(index, f[0], f[1], f[2], recv);
  return (int64_t)(p + (size_t)f[3] + 1);
}

/* chat_server shows a newcomer the room's recent lines between these two
 * notices: payloads of earlier runs, never deliveries. */
static const char HISTORY_START[] = "* recent messages:";
static const char HISTORY_END[] = "* end of recent messages";

static bool is_line(const char *buf, size_t start, size_t end, const char *line) {
  size_t length = strlen(line);
  return end - start == length && memcmp(buf + start, line, length) == 0;
}

static const char *find_at(const char *buf, size_t from, size_t end) {
  return from >= end ? NULL : memchr(buf + from, '@', end - from);
}

/* One line buf[start, end) (without its newline): payloads anywhere in it
 * (servers prefix `<nick> ` or `addr: `), else a notice. */
static void handle_line(int index, const char *buf, size_t start, size_t end, int64_t recv) {
  client_t *c = &clients[index];
  if (buf[start] == '*' &&
      is_line(buf, start, end, c->in_history ? HISTORY_END : HISTORY_START)) {
    c->in_history = !c->in_history;
    return;
  }
  if (c->in_history) return;
  const char *at = find_at(buf, start, end);
  if (!at) {
    T.notices++;
    return;
  }
  while (at) {
    size_t pos = (size_t)(at - buf);
    int64_t next = parse_payload(index, buf, pos, end, recv);
    if (next < 0) {
      T.garbled++; /* a payload cut or spliced by the room */
      at = find_at(buf, pos + 1, end);
    } else {
      at = find_at(buf, (size_t)next, end);
    }
  }
}

/* Keeps buf[from, end) as the client's unfinished line. */
static void keep_tail(client_t *c, const char *buf, size_t from, size_t end) {
  uint32_t length = (uint32_t)(end - from);
  if (length > c->tail_cap) {
    c->tail_cap = length < 64 ? 64 : length * 2 > c->rbuf ? c->rbuf : length * 2;
    c->tail = xrealloc(c->tail, c->tail_cap);
  }
  memmove(c->tail, buf + from, length);
  c->tail_len = length;
}

/* buf[0, end): the kept tail then what was just read. Handles every complete
 * line and keeps the unfinished one, as receive.ts's onData does. */
static void on_data(int index, const char *buf, size_t end, int64_t recv) {
  size_t pos = 0;
  while (pos < end) {
    const char *newline = memchr(buf + pos, '\n', end - pos);
    if (!newline) break;
    size_t line_end = (size_t)(newline - buf);
    client_t *c = &clients[index];
    if (c->skipping) c->skipping = false;
    else handle_line(index, buf, pos, line_end, recv);
    if (clients[index].state == C_GREETING) mark_ready(index);
    pos = line_end + 1;
  }
  client_t *c = &clients[index];
  if (pos >= end || c->skipping) {
    c->tail_len = 0;
  } else if (pos == 0 && end == c->rbuf) {
    c->skipping = true; /* a line longer than the buffer: a notice (e.g. a /who list) */
    T.long_lines++;
    c->tail_len = 0;
  } else {
    keep_tail(c, buf, pos, end);
  }
}

/* Reads what a client has (a few reads at most, then others get a turn). */
static void read_client(int index) {
  for (int round = 0; round < READS_PER_EVENT; round++) {
    client_t *c = &clients[index];
    if (c->state == C_CLOSED || c->state == C_FAILED) return;
    size_t kept = c->tail_len;
    if (kept) memcpy(scratch, c->tail, kept);
    size_t want = c->rbuf - kept;
    ssize_t n = read(c->fd, scratch + kept, want);
    if (n > 0) {
      T.bytes += (uint64_t)n;
      on_data(index, scratch, kept + (size_t)n, mono_us());
      if ((size_t)n < want) return; /* drained, most likely: no read just for EAGAIN */
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_client(index); /* EOF, or reset by the server */
    return;
  }
}

/* --------------------------------------------------------------- send --- */

static int digits(int64_t v) {
  char text[24];
  return snprintf(text, sizeof text, "%lld", (long long)v);
}

/* The pad length of a line, as send.ts computes it: the line is exactly
 * `bytes` long with its header, the pad length written in `*width` digits,
 * ':', the pad, "$" and newline. Where no width fits (a pad of 999 takes 3
 * digits, 1000 takes 4) the length gets a leading zero ("0999"), which every
 * reader parses. -1 when `bytes` cannot hold the header. */
static int64_t pad_length(int64_t header, int bytes, int *width) {
  for (int d = 1; d < 10; d++) {
    int64_t pad = bytes - header - 3 - d;
    if (pad < 0) return -1;
    if (digits(pad) <= d) {
      *width = d;
      return pad;
    }
  }
  return -1;
}

/* Lines [from, to) of a sender into its buffer, all stamped now. */
static void build_lines(sender_t *s, int from, int to) {
  int64_t now = mono_us();
  if (T.first_send == 0) T.first_send = now;
  T.last_send = now;
  int64_t sent = now - R.epoch_us;
  if (sent < 0) sent = 0; /* a line built a moment early */
  for (int seq = from; seq < to; seq++) {
    char *line = s->buf + (size_t)(seq - from) * (size_t)R.bytes;
    char header[64];
    int base = snprintf(header, sizeof header, "@%d:%d:%lld:", s->index, seq, (long long)sent);
    int width = 1;
    int64_t pad = pad_length(base, R.bytes, &width);
    if (pad < 0) pad = 0; /* cannot happen: start_run checked the longest header */
    int length = snprintf(header + base, sizeof header - (size_t)base, "%0*lld:", width,
                          (long long)pad);
    size_t head = (size_t)(base + length);
    if (head > (size_t)R.bytes - 2) head = (size_t)R.bytes - 2;
    memcpy(line, header, head);
    memset(line + head, 'x', (size_t)R.bytes - 2 - head);
    line[R.bytes - 2] = '$';
    line[R.bytes - 1] = '\n';
  }
  s->len = (size_t)(to - from) * (size_t)R.bytes;
  s->off = 0;
  s->batch_to = to;
}

static void sender_finish(sender_t *s) {
  if (s->done) return;
  s->done = true;
  R.senders_done++;
}

/* The sender's client closed, or the run ended: it writes no more. */
static void sender_stop(sender_t *s) {
  s->len = s->off = 0;
  sender_finish(s);
  client_t *c = &clients[s->client];
  if (is_open(c)) epoll_set(s->client, EPOLLIN);
}

/* Writes the sender's due lines, `batch` per write, keeping an unsent tail
 * for EPOLLOUT. Returns with EPOLLOUT asked for while it has more to write. */
static void sender_write(sender_t *s) {
  client_t *c = &clients[s->client];
  if (s->done || !is_open(c)) return;
  for (int batches = 0; batches < BATCHES_PER_EVENT;) {
    if (s->off == s->len) {
      if (s->len) s->written = s->batch_to;
      s->len = s->off = 0;
      if (s->written >= s->due) break;
      int to = s->written + R.batch < s->due ? s->written + R.batch : s->due;
      build_lines(s, s->written, to);
      batches++;
    }
    ssize_t n = send(c->fd, s->buf + s->off, s->len - s->off, MSG_NOSIGNAL);
    if (n > 0) {
      s->off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    T.send_errors++;
    sender_stop(s);
    return;
  }
  if (s->off == s->len && s->len) {
    s->written = s->batch_to;
    s->len = s->off = 0;
  }
  if (s->written >= R.lines) sender_finish(s);
  bool more = s->len > s->off || s->written < s->due;
  epoll_set(s->client, more ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void arm_timer(double at_us) {
  struct itimerspec t = {0};
  if (at_us > 0) {
    int64_t ns = (int64_t)(at_us * 1000.0);
    if (ns <= 0) ns = 1; /* 0 would disarm it */
    t.it_value.tv_sec = ns / 1000000000;
    t.it_value.tv_nsec = ns % 1000000000;
  }
  timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &t, NULL);
}

/* Marks lines due (paced: by the clock, drift-free; flat out: all of them),
 * writes them, and sets the timer for the next one due. The timer (a
 * timerfd in the epoll set) wakes us at the microsecond: epoll_wait's
 * timeout is whole milliseconds, which would send paced lines up to 1 ms
 * late, and waking early to spin would burn a core. */
static void tick(void) {
  if (!R.active) return;
  int64_t now = mono_us();
  double next = 0;
  for (int i = 0; i < R.senders; i++) {
    sender_t *s = &R.snd[i];
    if (s->done) continue;
    if (R.rate <= 0) {
      if (now >= R.at_us) s->due = R.lines;
    } else {
      double elapsed = (double)now - s->start_us;
      int due = elapsed < 0 ? 0 : (int)(elapsed * R.rate / 1e6) + 1;
      if (due > R.lines) due = R.lines;
      if (due > s->due) {
        /* How late the oldest newly due line is: the generator's own lag. */
        double lag = ((double)now - (s->start_us + s->due * 1e6 / R.rate)) / 1000.0;
        if (lag > T.max_lag_ms) T.max_lag_ms = lag;
        s->due = due;
      }
      double when = s->start_us + s->due * 1e6 / R.rate;
      if (s->due < R.lines && (next == 0 || when < next)) next = when;
    }
    if (s->written < s->due && !(clients[s->client].events & EPOLLOUT)) sender_write(s);
  }
  if (R.rate > 0 || now < R.at_us) arm_timer(now < R.at_us ? (double)R.at_us : next);
  else arm_timer(0);
}

/* ---------------------------------------------------------------- run --- */

static void reset_totals(void) {
  memset(&T, 0, sizeof T);
  hist_reset(&T.hist);
}

/* A second run on the same clients counts only its own lines. */
static void forget_last_run(void) {
  for (size_t i = 0; i < client_count; i++) {
    client_t *c = &clients[i];
    free(c->seen);
    free(c->counts);
    free(c->max_seq);
    c->seen = NULL;
    c->counts = c->max_seq = NULL;
    c->sender = -1;
  }
  if (R.snd) {
    for (int i = 0; i < R.senders; i++) free(R.snd[i].buf);
    free(R.snd);
    R.snd = NULL;
  }
  reset_totals();
}

/* The run's senders: clients 0..S-1, as the Deno group picks them. */
static void make_senders(void) {
  R.snd = xcalloc((size_t)R.senders, sizeof *R.snd);
  R.senders_done = 0;
  for (int i = 0; i < R.senders; i++) {
    sender_t *s = &R.snd[i];
    s->client = i;
    s->index = i;
    /* Spread the senders' lines evenly over each period. */
    double phase = R.rate > 0 ? (double)i / R.senders * (1e6 / R.rate) : 0;
    s->start_us = (double)R.at_us + phase;
    s->buf = xmalloc((size_t)R.batch * (size_t)R.bytes);
    clients[i].sender = i;
    if (!is_open(&clients[i])) sender_finish(s);
  }
}

typedef struct {
  double at, senders, lines, bytes, rate, batch, drain, max, stall;
} run_args_t;

static void start_run(const run_args_t *a) {
  forget_last_run();
  int64_t real = real_us(), mono = mono_us();
  R.offset_us = real - mono;
  int64_t at_real = a->at > 0 ? (int64_t)(a->at * 1000.0 + 0.5) : real + 200000;
  R.configured = R.active = true;
  R.senders = (int)a->senders;
  R.lines = (int)a->lines;
  R.bytes = (int)a->bytes;
  R.rate = a->rate;
  R.batch = a->batch >= 1 ? (int)a->batch : 1;
  R.stride = (R.lines + 7) / 8;
  R.at_us = at_real - R.offset_us;
  R.epoch_us = R.at_us;
  /* Paced: the schedule's end plus the drain time; flat out: only max. */
  int64_t max_us = (int64_t)(a->max * 1000.0);
  int64_t paced_us = R.rate > 0 ? (int64_t)(R.lines / R.rate * 1e6 + a->drain * 1000.0) : max_us;
  R.deadline_us = R.at_us + (paced_us < max_us ? paced_us : max_us);
  R.stall_us = (int64_t)(a->stall * 1000.0);
  R.last_progress_us = R.at_us;
  R.last_unique = 0;
  R.expected = 0;
  make_senders();
  for (size_t i = 0; i < client_count; i++) {
    client_t *c = &clients[i];
    c->in_run = is_open(c);
    if (c->in_run) {
      /* Every line of every sender, but its own when it sends. */
      R.expected += (uint64_t)R.senders * (uint64_t)R.lines;
      if (c->sender >= 0) R.expected -= (uint64_t)R.lines;
    }
  }
  R.cpu0 = cpu_seconds();
  outf("{\"expected\":%llu,\"senders\":%d}", (unsigned long long)R.expected, R.senders);
  reply_end();
  tick(); /* arms the timer for the start instant */
}

/* Monotonic us as the coordinator's wall-clock ms (0 stays 0: none). */
static double wall_ms(int64_t mono) {
  return mono ? (double)(mono + R.offset_us) / 1000.0 : 0;
}

static void reply_result(const char *stopped_by) {
  uint64_t gap_lost = 0, tail_missing = 0;
  int receivers = 0, closed_receivers = 0;
  for (size_t i = 0; i < client_count; i++) {
    client_t *c = &clients[i];
    if (!c->in_run) continue;
    receivers++;
    if (!is_open(c)) closed_receivers++;
    for (int s = 0; s < R.senders; s++) {
      if (s == c->sender) continue;
      int64_t count = c->counts ? c->counts[s] : 0;
      int64_t max = c->max_seq ? c->max_seq[s] : -1;
      gap_lost += (uint64_t)(max + 1 - count);
      tail_missing += (uint64_t)(R.lines - 1 - max);
    }
  }
  for (int i = 0; i < R.senders; i++) T.sent += (uint64_t)R.snd[i].written;
#define U(x) (unsigned long long)(x)
  outf("{\"t0\":%.3f,\"tEnd\":%.3f,\"stoppedBy\":\"%s\",\"expected\":%llu,\"delivered\":%llu,",
       wall_ms(R.at_us), wall_ms(mono_us()), stopped_by, U(R.expected), U(T.unique));
  outf("\"gapLost\":%llu,\"tailMissing\":%llu,\"duplicates\":%llu,\"reordered\":%llu,",
       U(gap_lost), U(tail_missing), U(T.duplicates), U(T.reordered));
  outf("\"garbled\":%llu,\"echoes\":%llu,\"foreign\":%llu,\"notices\":%llu,\"longLines\":%llu,",
       U(T.garbled), U(T.echoes), U(T.foreign), U(T.notices), U(T.long_lines));
  outf("\"negativeLatencies\":%llu,\"receivers\":%d,\"closedReceivers\":%d,", U(T.negative),
       receivers, closed_receivers);
  outf("\"sent\":%llu,\"scheduled\":%llu,\"sendErrors\":%llu,\"bytesRead\":%llu,", U(T.sent),
       U((uint64_t)R.senders * (uint64_t)R.lines), U(T.send_errors), U(T.bytes));
  outf("\"firstSend\":%.3f,\"lastSend\":%.3f,\"firstRecv\":%.3f,\"lastRecv\":%.3f,",
       wall_ms(T.first_send), wall_ms(T.last_send), wall_ms(T.first_recv), wall_ms(T.last_recv));
  outf("\"maxSendLagMs\":%.3f,\"loadCpuSeconds\":%.4f,\"hist\":", T.max_lag_ms,
       cpu_seconds() - R.cpu0);
#undef U
  out_histogram(&T.hist);
  outf("}");
  reply_end();
}

/* Ends the run: senders stop (a batch cut short stays unsent), the timer
 * stops, the result goes out. Clients keep reading until the next run. */
static void finish_run(const char *stopped_by) {
  for (int i = 0; i < R.senders; i++) {
    if (!R.snd[i].done) sender_stop(&R.snd[i]);
  }
  arm_timer(0);
  R.active = false;
  reply_result(stopped_by);
}

/* group.ts's stop rules: done, deadline, or no new delivery for stall ms. */
static void run_check_end(void) {
  if (!R.active) return;
  int64_t now = mono_us();
  if (T.unique != R.last_unique) {
    R.last_unique = T.unique;
    R.last_progress_us = now;
  }
  if (T.unique >= R.expected && R.senders_done == R.senders) finish_run("done");
  else if (now >= R.deadline_us) finish_run("deadline");
  else if (now - R.last_progress_us > R.stall_us && now > R.at_us + R.stall_us) finish_run("stall");
}

/* ----------------------------------------------------------- commands --- */

/* The value of `key=` among the arguments, or NULL. */
static const char *arg(char **args, int count, const char *key) {
  size_t length = strlen(key);
  for (int i = 0; i < count; i++) {
    if (strncmp(args[i], key, length) == 0 && args[i][length] == '=') return args[i] + length + 1;
  }
  return NULL;
}

/* A number argument into *value (`fallback` when absent); false when it is
 * not a number (or NaN). */
static bool number_arg(char **args, int count, const char *key, double fallback, double *value) {
  const char *text = arg(args, count, key);
  if (!text) {
    *value = fallback;
    return true;
  }
  char *end;
  *value = strtod(text, &end);
  return end != text && *end == '\0' && *value == *value;
}

static bool known_args(char **args, int count, const char *const *keys) {
  for (int i = 0; i < count; i++) {
    bool known = false;
    for (const char *const *k = keys; *k; k++) {
      size_t length = strlen(*k);
      if (strncmp(args[i], *k, length) == 0 && args[i][length] == '=') known = true;
    }
    if (!known) return false;
  }
  return true;
}

static void command_connect(char **args, int count) {
  static const char *const keys[] = {"host", "port", "count", "timeout", "rbuf",
                                     "inflight", "ready", NULL};
  double port, n, timeout, rbuf, inflight;
  const char *host = arg(args, count, "host");
  const char *ready = arg(args, count, "ready");
  if (!known_args(args, count, keys) || !number_arg(args, count, "port", -1, &port) ||
      !number_arg(args, count, "count", -1, &n) ||
      !number_arg(args, count, "timeout", 60000, &timeout) ||
      !number_arg(args, count, "rbuf", default_rbuf, &rbuf) ||
      !number_arg(args, count, "inflight", default_inflight, &inflight) || port < 1 ||
      port > 65535 || n < 0 || rbuf < 256 || rbuf > (1 << 24) || inflight < 1 ||
      (ready && strcmp(ready, "line") != 0 && strcmp(ready, "connected") != 0)) {
    reply_error("usage: connect [host=H] port=P count=N [timeout=MS] [rbuf=BYTES] "
                "[inflight=K] [ready=line|connected]");
    return;
  }
  memset(&K, 0, sizeof K);
  K.addr.sin_family = AF_INET;
  K.addr.sin_port = htons((uint16_t)port);
  if (!host || strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (inet_pton(AF_INET, host, &K.addr.sin_addr) != 1) {
    reply_error("connect: host must be an IPv4 address");
    return;
  }
  K.count = (int)n;
  K.max_inflight = (int)inflight;
  K.rbuf = (uint32_t)rbuf;
  K.ready_on_connect = ready ? strcmp(ready, "connected") == 0 : default_ready_on_connect;
  if (K.rbuf > scratch_size) {
    scratch_size = K.rbuf;
    scratch = xrealloc(scratch, scratch_size);
  }
  K.started_us = mono_us();
  K.deadline_us = K.started_us + (int64_t)(timeout * 1000.0);
  K.active = true;
  connect_advance();
}

static void command_run(char **args, int count) {
  static const char *const keys[] = {"at", "senders", "lines", "bytes", "rate", "batch",
                                     "drain", "max", "stall", NULL};
  run_args_t a;
  bool ok = known_args(args, count, keys) && number_arg(args, count, "at", 0, &a.at) &&
            number_arg(args, count, "senders", -1, &a.senders) &&
            number_arg(args, count, "lines", -1, &a.lines) &&
            number_arg(args, count, "bytes", 64, &a.bytes) &&
            number_arg(args, count, "rate", 0, &a.rate) &&
            number_arg(args, count, "batch", 32, &a.batch) &&
            number_arg(args, count, "drain", 3000, &a.drain) &&
            number_arg(args, count, "max", 60000, &a.max) &&
            number_arg(args, count, "stall", 3000, &a.stall);
  if (!ok || a.senders < 0 || a.lines < 1 || a.lines > 1e8 || a.bytes > 1e6 || a.rate < 0 ||
      a.max <= 0) {
    reply_error("usage: run [at=MS] senders=S lines=L [bytes=B] [rate=R] [batch=K] "
                "[drain=MS] [max=MS] [stall=MS]");
    return;
  }
  if (a.senders > (double)client_count) {
    reply_error("run: more senders than clients");
    return;
  }
  /* The longest header this run can write (its sendTime long past the deadline). */
  int64_t header = digits((int64_t)a.senders) + digits((int64_t)a.lines) +
                   digits((int64_t)(a.max + 600000) * 1000) + 4;
  int width = 1;
  if (pad_length(header, (int)a.bytes, &width) < 0) {
    reply_error("run: bytes is too short for the payload header");
    return;
  }
  start_run(&a);
}

static void command_close(void) {
  int closed = 0;
  for (size_t i = 0; i < client_count; i++) {
    if (is_open(&clients[i])) closed++;
    close_client((int)i);
  }
  outf("{\"closed\":%d}", closed);
  reply_end();
}

static rlim_t fd_limit(void) {
  struct rlimit l;
  return getrlimit(RLIMIT_NOFILE, &l) == 0 ? l.rlim_cur : 0;
}

/* Splits a command line into words and runs it. */
static void run_command(char *line) {
  char *words[32];
  int count = 0;
  for (char *w = strtok(line, " \t\r"); w && count < 32; w = strtok(NULL, " \t\r")) {
    words[count++] = w;
  }
  if (count == 0) return;
  const char *name = words[0];
  if (strcmp(name, "hello") == 0) {
    outf("{\"pid\":%d,\"fdLimit\":%llu}", (int)getpid(), (unsigned long long)fd_limit());
    reply_end();
  } else if (strcmp(name, "clock") == 0) {
    outf("{\"now\":%.3f}", (double)real_us() / 1000.0);
    reply_end();
  } else if (strcmp(name, "connect") == 0) {
    command_connect(words + 1, count - 1);
  } else if (strcmp(name, "run") == 0) {
    command_run(words + 1, count - 1);
  } else if (strcmp(name, "close") == 0) {
    command_close();
  } else {
    reply_error("unknown command (hello, clock, connect, run, close)");
  }
}

/* ------------------------------------------------------------ control --- */

static char *input;
static size_t input_len, input_cap;
static bool input_eof;

static bool busy(void) {
  return K.active || R.active;
}

/* Reads what stdin has (one read: it is readable). */
static void read_stdin(void) {
  if (input_cap - input_len < 4096) {
    input_cap = input_cap * 2 + 4096;
    input = xrealloc(input, input_cap);
  }
  ssize_t n = read(STDIN_FILENO, input + input_len, input_cap - input_len);
  if (n > 0) input_len += (size_t)n;
  else if (n == 0 || (errno != EINTR && errno != EAGAIN)) input_eof = true;
  if (input_eof) epoll_ctl(poller, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
}

/* Runs the commands read so far, one at a time: one that starts a connect or
 * a run is finished before the next is taken. */
static void take_commands(void) {
  while (!busy()) {
    char *newline = input_len ? memchr(input, '\n', input_len) : NULL;
    if (!newline) {
      if (!input_eof || input_len == 0) return;
      if (input_len == input_cap) input = xrealloc(input, ++input_cap);
      input[input_len++] = '\n'; /* a last line without its newline */
      continue;
    }
    *newline = '\0';
    size_t used = (size_t)(newline - input) + 1;
    run_command(input);
    memmove(input, input + used, input_len - used);
    input_len -= used;
  }
}

/* epoll_wait's timeout: the connect's deadline, or the run's deadline or
 * stall point; sends are woken by the timerfd. -1 (idle) when neither. */
static int wait_ms(void) {
  int64_t until = -1;
  if (K.active) until = K.deadline_us;
  if (R.active) {
    until = R.deadline_us;
    int64_t stall = R.last_progress_us + R.stall_us + 1;
    if (R.at_us + R.stall_us + 1 > stall) stall = R.at_us + R.stall_us + 1;
    if (stall < until) until = stall;
  }
  if (until < 0) return -1;
  int64_t left = until - mono_us();
  if (left <= 0) return 0;
  return (int)((left + 999) / 1000);
}

static void on_event(const struct epoll_event *e) {
  if (e->data.u64 == TAG_STDIN) {
    read_stdin();
    return;
  }
  if (e->data.u64 == TAG_TIMER) {
    uint64_t expirations;
    if (read(timer_fd, &expirations, sizeof expirations) < 0) { /* spurious: tick anyway */ }
    tick();
    return;
  }
  int index = (int)e->data.u64;
  client_t *c = &clients[index];
  if (c->state == C_CONNECTING) {
    connect_done(index);
    if (clients[index].state != C_GREETING && clients[index].state != C_READY) return;
  }
  if (e->events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_client(index);
  c = &clients[index];
  if ((e->events & EPOLLOUT) && R.active && c->sender >= 0 && is_open(c)) {
    sender_write(&R.snd[c->sender]);
  }
}

/* Soft open-file limit up to the hard one: thousands of clients. */
static void raise_fd_limit(void) {
  struct rlimit l;
  if (getrlimit(RLIMIT_NOFILE, &l) == 0 && l.rlim_cur < l.rlim_max) {
    l.rlim_cur = l.rlim_max;
    setrlimit(RLIMIT_NOFILE, &l);
  }
}

static void usage_exit(void) {
  fprintf(stderr, "usage: loadgen [--rbuf BYTES] [--inflight K] [--ready line|connected]\n"
                  "then commands on stdin (see the top of bench/loadgen.c)\n");
  exit(2);
}

static void parse_cli(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "--rbuf") == 0 && value) default_rbuf = (uint32_t)atoi(value);
    else if (strcmp(argv[i], "--inflight") == 0 && value) default_inflight = atoi(value);
    else if (strcmp(argv[i], "--ready") == 0 && value && strcmp(value, "connected") == 0)
      default_ready_on_connect = true;
    else if (strcmp(argv[i], "--ready") == 0 && value && strcmp(value, "line") == 0)
      default_ready_on_connect = false;
    else usage_exit();
    i++;
  }
  if (default_rbuf < 256 || default_rbuf > (1 << 24) || default_inflight < 1) usage_exit();
}

/* Stdin in the epoll set; a regular file (`< commands.txt`) cannot be, so it
 * is read whole at once. */
static void watch_stdin(void) {
  struct epoll_event e = {.events = EPOLLIN, .data.u64 = TAG_STDIN};
  if (epoll_ctl(poller, EPOLL_CTL_ADD, STDIN_FILENO, &e) == 0) return;
  while (!input_eof) read_stdin();
}

int main(int argc, char **argv) {
  parse_cli(argc, argv);
  signal(SIGPIPE, SIG_IGN); /* a reset peer is an error return, not a signal */
  raise_fd_limit();
  reset_totals();
  scratch_size = default_rbuf;
  scratch = xmalloc(scratch_size);
  poller = epoll_create1(EPOLL_CLOEXEC);
  timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (poller < 0 || timer_fd < 0) {
    perror("loadgen: epoll/timerfd");
    return 1;
  }
  struct epoll_event te = {.events = EPOLLIN, .data.u64 = TAG_TIMER};
  epoll_ctl(poller, EPOLL_CTL_ADD, timer_fd, &te);
  watch_stdin();
  static struct epoll_event events[MAX_EVENTS];
  for (;;) {
    take_commands();
    if (input_eof && !busy() && input_len == 0) break; /* every command done */
    int n = epoll_wait(poller, events, MAX_EVENTS, wait_ms());
    if (n < 0 && errno != EINTR) {
      perror("loadgen: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) on_event(&events[i]);
    connect_advance();
    run_check_end();
  }
  for (size_t i = 0; i < client_count; i++) close_client((int)i);
  return 0;
}
