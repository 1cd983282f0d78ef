/*
 * fix_roundtrip: what FIX parsing and TCP cost on top of the bus.
 *
 * Starts examples/fix_gateway as a child (fsync policy from --fsync,
 * default none: a process crash loses nothing, a power cut may), connects
 * a QuickFIX SocketInitiator with 1 and then 4 sessions on 127.0.0.1, and
 * for each:
 *   throughput  sends --orders NewOrderSingles as fast as QuickFIX takes
 *               them (round-robin over the sessions, at most 1,000 without
 *               an answer) and reports orders/s until the last
 *               acknowledgement (ExecutionReport 39=0);
 *   latency     sends --rate orders/s in all, paced, and reports p50/p99
 *               of initiator send -> acknowledgement received.
 * The orders are limit buys below the market: each gets exactly one report,
 * its acknowledgement, written after its journal record.
 *
 *   fix_roundtrip [--orders N] [--rate R] [--seconds S] [--fsync none|group]
 */
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <time.h>

#include "../examples/fix_gateway/fix_client.h"

namespace {

const uint64_t kWindow = 1000; /* orders in flight, all sessions */

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct Run {
  std::vector<uint64_t> sent, acked; /* per order, ns; 0 = not yet */
  std::atomic<uint64_t> acks{0};
  std::atomic<uint64_t> other{0}; /* reports that are not an ack */
  std::string last_other;         /* initiator thread only, read after */
};

/* ClOrdID "<prefix>-<i>": the order's index. */
long index_of(const std::string &id) {
  size_t dash = id.rfind('-');
  return dash == std::string::npos ? -1 : atol(id.c_str() + dash + 1);
}

int one(fixc::Client &c, int sessions, Run &run, const std::string &prefix, long n, double rate) {
  run.sent.assign((size_t)n, 0);
  run.acked.assign((size_t)n, 0);
  run.acks = 0;
  c.hook = [&](int, const fixc::Msg &m) {
    if (m.get(11).compare(0, prefix.size(), prefix) != 0)
      return;
    if (m.type() != "8" || m.get(39) != "0") {
      run.other.fetch_add(1, std::memory_order_relaxed);
      run.last_other = m.type() + " 39=" + m.get(39) + " " + m.get(58);
      return;
    }
    long i = index_of(m.get(11));
    if (i >= 0 && i < n && run.acked[(size_t)i] == 0) {
      run.acked[(size_t)i] = now_ns();
      run.acks.fetch_add(1, std::memory_order_release);
    }
  };
  uint64_t start = now_ns();
  for (long i = 0; i < n; i++) {
    if (rate > 0) {
      uint64_t due = start + (uint64_t)((double)i * 1e9 / rate);
      while (now_ns() < due) {
        uint64_t left = due - now_ns();
        if (left > 200000)
          std::this_thread::sleep_for(std::chrono::nanoseconds(left - 100000));
      }
    }
    /* At most kWindow orders unanswered, as a real client keeps it:
     * QuickFIX's initiator blocks in send() once the gateway stops reading
     * (its ring full), and its one reader thread then waits behind it. */
    uint64_t wdeadline = now_ns() + 60ull * 1000000000u;
    while ((uint64_t)i >= run.acks.load(std::memory_order_acquire) + kWindow) {
      if (now_ns() > wdeadline)
        return -1;
      std::this_thread::yield();
    }
    int s = (int)(i % sessions);
    std::string id = prefix + "-" + std::to_string(i);
    run.sent[(size_t)i] = now_ns();
    if (c.send(s, fixc::new_order(id, std::to_string(3000 + s), "AAPL", "1", "10", "2", "189")) == 0)
      return -1;
  }
  /* Bounded wait for the last acknowledgement. */
  uint64_t deadline = now_ns() + 60ull * 1000000000u;
  while (run.acks.load(std::memory_order_acquire) < (uint64_t)n && now_ns() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  c.hook = nullptr;
  if (run.acks.load() == (uint64_t)n)
    return 0;
  fprintf(stderr, "fix_roundtrip: %llu of %ld acknowledged, %llu other answers (last: %s)\n",
          (unsigned long long)run.acks.load(), n, (unsigned long long)run.other.load(),
          run.last_other.c_str());
  return -1;
}

}  // namespace

int main(int argc, char **argv) {
  long orders = 20000;
  double rate = 1000, seconds = 5;
  std::string fsync_policy = "none";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--orders"))
      orders = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--rate"))
      rate = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds"))
      seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--fsync"))
      fsync_policy = argv[i + 1];
    else {
      fprintf(stderr, "usage: fix_roundtrip [--orders N] [--rate R] [--seconds S] [--fsync none|group]\n");
      return 2;
    }
  }
  char tmpl[] = "/tmp/fe_fixbench.XXXXXX";
  if (mkdtemp(tmpl) == nullptr)
    return 1;
  fixc::GatewayProcess gw;
  int port = 0;
  for (int attempt = 0; attempt < 3 && port == 0; attempt++) {
    port = fixc::free_port(26000 + (int)((getpid() + attempt * 997) % 6000));
    if (port != 0 && !gw.start(FGW_BIN, FGW_CFG, port, tmpl, {"--fsync", fsync_policy}, 20000)) {
      gw.stop(SIGKILL, 1000);
      port = 0;
    }
  }
  if (port == 0) {
    fprintf(stderr, "fix_roundtrip: the gateway did not start\n");
    return 1;
  }
  printf("fix_roundtrip: gateway fsync=%s, loopback, %ld orders for throughput, %.0f orders/s "
         "for %.0f s for latency\n", fsync_policy.c_str(), orders, rate, seconds);
  int rc = 0;
  /* One initiator with four sessions; the 1-session runs use the first. */
  std::unique_ptr<fixc::Client> c(new fixc::Client(port, 4));
  if (!c->wait_until([&] { return c->all_logged_on(); }, 20000)) {
    fprintf(stderr, "fix_roundtrip: sessions did not log on\n");
    rc = 1;
  }
  for (int sessions : {1, 4}) {
    if (rc != 0)
      break;
    Run run;
    std::string p = "T" + std::to_string(sessions);
    uint64_t t0 = now_ns();
    if (one(*c, sessions, run, p, orders, 0) != 0) {
      fprintf(stderr, "fix_roundtrip: throughput run lost acknowledgements\n");
      rc = 1;
      break;
    }
    uint64_t t1 = *std::max_element(run.acked.begin(), run.acked.end());
    printf("sessions=%d throughput: %.0f orders/s (%ld orders, send to last ack %.3f s)\n", sessions,
           (double)orders / ((double)(t1 - t0) / 1e9), orders, (double)(t1 - t0) / 1e9);
    long n = (long)(rate * seconds);
    p = "L" + std::to_string(sessions);
    if (one(*c, sessions, run, p, n, rate) != 0) {
      fprintf(stderr, "fix_roundtrip: latency run lost acknowledgements\n");
      rc = 1;
      break;
    }
    std::vector<uint64_t> lat;
    for (long i = 0; i < n; i++)
      lat.push_back(run.acked[(size_t)i] - run.sent[(size_t)i]);
    std::sort(lat.begin(), lat.end());
    printf("sessions=%d latency at %.0f orders/s: p50 %.0f us, p99 %.0f us, max %.0f us (%ld orders)\n",
           sessions, rate, lat[lat.size() / 2] / 1e3, lat[lat.size() * 99 / 100] / 1e3,
           lat.back() / 1e3, n);
    fflush(stdout);
  }
  c.reset();
  gw.stop(SIGTERM, 20000);
  std::string cmd = std::string("rm -rf '") + tmpl + "'";
  if (system(cmd.c_str()) != 0)
    fprintf(stderr, "could not remove %s\n", tmpl);
  return rc;
}
