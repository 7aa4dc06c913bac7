/*
 * bench/floor_relay.c: the cheapest room a server can be, to show what the
 * bench's load generator and this machine allow on their own (the "floor"
 * rows of paced-100). One thread, epoll, TCP_NODELAY; whatever one client
 * sends is written as it came to every other client, one write() each, with
 * no framing, no names, no queue and no sanitising. Not a chat server: a
 * receiver whose buffers fill only holds everyone up.
 *
 * Built by bench/bench.ts with `cc -O2`; prints `listening on 127.0.0.1:PORT`
 * and greets each client with one line, as chat_server.ts does.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 20000

static int clients[MAX_CLIENTS];
static int client_count;

static void drop(int fd) {
  for (int i = 0; i < client_count; i++) {
    if (clients[i] == fd) {
      clients[i] = clients[--client_count];
      break;
    }
  }
  close(fd); /* also takes it out of the epoll set */
}

static void relay(int from, const char *bytes, size_t length) {
  for (int i = 0; i < client_count; i++) {
    if (clients[i] == from) continue;
    /* Blocking sockets: a partial write cannot happen short of an error.
       MSG_NOSIGNAL: a receiver that has gone away is an error, not SIGPIPE. */
    if (send(clients[i], bytes, length, MSG_NOSIGNAL) < 0) { /* its read sees EOF or reset */ }
  }
}

int main(void) {
  int one = 1;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  socklen_t size = sizeof address;
  if (listener < 0 || bind(listener, (struct sockaddr *)&address, size) < 0 ||
      listen(listener, 4096) < 0 ||
      getsockname(listener, (struct sockaddr *)&address, &size) < 0) {
    perror("error: floor_relay cannot listen");
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", ntohs(address.sin_port));
  fflush(stdout);

  int poller = epoll_create1(0);
  struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(poller, EPOLL_CTL_ADD, listener, &event);
  static char buffer[64 * 1024];
  struct epoll_event ready[256];
  for (;;) {
    int count = epoll_wait(poller, ready, 256, -1);
    for (int i = 0; i < count; i++) {
      int fd = ready[i].data.fd;
      if (fd == listener) {
        int client = accept(listener, NULL, NULL);
        if (client < 0) continue;
        if (client_count == MAX_CLIENTS) {
          close(client);
          continue;
        }
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        static const char welcome[] = "* welcome to the floor relay\n";
        if (send(client, welcome, sizeof welcome - 1, MSG_NOSIGNAL) < 0) { /* its read sees it */ }
        clients[client_count++] = client;
        struct epoll_event readable = {.events = EPOLLIN, .data.fd = client};
        epoll_ctl(poller, EPOLL_CTL_ADD, client, &readable);
        continue;
      }
      ssize_t got = read(fd, buffer, sizeof buffer);
      if (got <= 0) drop(fd);
      else relay(fd, buffer, (size_t)got);
    }
  }
}
