/*
 * The bus's public calls: publishing (the claims and publishes, over the
 * ring's inline fast paths), the verdict readers, the lifecycle (start,
 * poll, drain, stop, destroy) and the statistics.  The layers below:
 * ring.h (slots, sequencer, gates, wait lot), worker.c (consumers and
 * worker threads), submit.c (the submit path), durable.c (journal and
 * recovery); bus_create.c builds a bus from its configuration.
 */
#define _GNU_SOURCE
#define FE_BUS_PRIV_OUT_OF_LINE /* bus.h: this file defines the exported copies */
#include "bus_impl.h"
#include "verdict.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------- producers */

int fe_bus_try_claim_n(fe_bus_t *bus, uint32_t n, uint64_t *first) {
  if (FE_UNLIKELY(bus == NULL || first == NULL || n == 0 ||
                  n > bus->ring.pub.capacity))
    return FE_EINVAL;
  int r = fe__ring_claim_n(&bus->ring, n, first);
  if (r == FE_EFULL)
    __atomic_fetch_add(&bus->ring.full, 1, __ATOMIC_RELAXED);
  return r;
}

int fe_bus_claim_n(fe_bus_t *bus, uint32_t n, uint64_t *first,
                   uint64_t timeout_ns) {
  if (FE_UNLIKELY(bus == NULL || first == NULL || n == 0 ||
                  n > bus->ring.pub.capacity))
    return FE_EINVAL;
  int r = fe__ring_claim_n(&bus->ring, n, first);
  if (FE_LIKELY(r != FE_EFULL))
    return r;
  return fe__ring_claim_wait(&bus->ring, n, first, timeout_ns);
}

/* The single-event claim and publish are inline in bus.h; these are the
 * calls they make off their common case, and the exported copies.  The
 * inline code checked the arguments; these check them again, cheaply,
 * for a host that calls them by mistake. */
int fe_bus_priv_claim_slow(fe_bus_t *bus, fe_event_t **ev, uint64_t timeout_ns,
                           int wait) {
  if (ev == NULL)
    return FE_EINVAL;
  uint64_t s = 0;
  int r = wait ? fe_bus_claim_n(bus, 1, &s, timeout_ns)
               : fe_bus_try_claim_n(bus, 1, &s);
  if (r == 0)
    *ev = fe__ring_slot(&bus->ring, s);
  return r;
}

/* Only the claim the inline path just took, and only once the bus is
 * stopping: anything else would void a sequence somebody else owns. */
int fe_bus_priv_claim_void(fe_bus_t *bus, uint64_t seq) {
  if (bus == NULL || bus->ring.pub.producer != FE_PRODUCER_SINGLE ||
      seq + 1 != fe__load_relaxed(&bus->ring.pub.claimed) ||
      !fe__ring_stopping(&bus->ring))
    return FE_EINVAL;
  return fe__ring_void_claim(&bus->ring, seq, 1);
}

int fe_bus_priv_publish_slow(fe_bus_t *bus, fe_event_t *ev) {
  if (bus == NULL || ev == NULL)
    return FE_EINVAL;
  fe__ring_publish(&bus->ring, ev->seq, 1);
  return 0;
}

void fe_bus_priv_wake(fe_bus_t *bus) {
  if (bus != NULL)
    fe__ring_wake_workers(&bus->ring, bus->ring.pub.root_wake_mask);
}

int fe_bus_try_claim(fe_bus_t *bus, fe_event_t **ev) {
  return fe_bus_priv_claim(bus, ev, 0, 0);
}

int fe_bus_claim(fe_bus_t *bus, fe_event_t **ev, uint64_t timeout_ns) {
  return fe_bus_priv_claim(bus, ev, timeout_ns, 1);
}

int fe_bus_publish(fe_bus_t *bus, fe_event_t *ev) {
  return fe_bus_priv_publish(bus, ev);
}

fe_event_t *fe_bus_event_at(fe_bus_t *bus, uint64_t seq) {
  if (bus == NULL)
    return NULL;
  return fe__ring_slot(&bus->ring, seq);
}

int fe_bus_publish_n(fe_bus_t *bus, uint64_t first, uint32_t n) {
  if (FE_UNLIKELY(bus == NULL || n == 0))
    return FE_EINVAL;
  fe__ring_publish(&bus->ring, first, n);
  return 0;
}

/* 1 with the stage and reason when ev's verdict is of `kind`; else 0 and
 * the outputs untouched. */
static int event_verdict(const fe_event_t *ev, uint32_t kind, uint32_t *stage,
                         uint32_t *reason) {
  if (ev == NULL)
    return 0;
  verdict_info_t d = fe__verdict_decode(fe__load_relaxed(&ev->verdict));
  if (d.kind != kind)
    return 0;
  if (stage)
    *stage = d.stage;
  if (reason)
    *reason = d.reason;
  return 1;
}

int fe_event_rejected(const fe_event_t *ev, uint32_t *stage, uint32_t *reason) {
  return event_verdict(ev, VERDICT_REJECTED, stage, reason);
}

int fe_event_dead_lettered(const fe_event_t *ev, uint32_t *stage,
                           uint32_t *reason) {
  return event_verdict(ev, VERDICT_DEAD_LETTERED, stage, reason);
}

/* ------------------------------------------------------------- lifecycle */

static void join_workers(fe_bus_t *bus) {
  for (uint32_t i = 0; i < bus->n_workers; i++)
    if (bus->workers[i].started) {
      pthread_join(bus->workers[i].thread, NULL);
      bus->workers[i].started = 0;
    }
}

static int start_worker(worker_t *w, fe_diag_t *diag) {
  pthread_attr_t attr;
  cpu_set_t set;
  if (pthread_attr_init(&attr) != 0)
    return fe__diag(diag, FE_ETHREAD, "worker %u: pthread_attr_init failed",
                    w->index);
  if (w->cpu >= 0) {
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    int e = pthread_attr_setaffinity_np(&attr, sizeof set, &set);
    if (e != 0) {
      pthread_attr_destroy(&attr);
      return fe__diag(diag, FE_EAFFINITY, "worker %u: cannot pin to cpu %d: "
                      "%s", w->index, w->cpu, strerror(e));
    }
  }
  int e = pthread_create(&w->thread, &attr, fe__worker_main, w);
  pthread_attr_destroy(&attr);
  if (e == EINVAL && w->cpu >= 0)
    return fe__diag(diag, FE_EAFFINITY, "worker %u: cannot pin to cpu %d "
                    "(offline or not allowed)", w->index, w->cpu);
  if (e != 0)
    return fe__diag(diag, FE_ETHREAD, "worker %u: pthread_create: %s",
                    w->index, strerror(e));
  w->started = 1;
  char name[16];
  snprintf(name, sizeof name, "fe-worker-%u", w->index);
  pthread_setname_np(w->thread, name);
  return 0;
}

/* Host-driven recovery with a full ring: one pass of every worker. */
static void poll_all(void *arg) {
  fe_bus_t *bus = arg;
  for (uint32_t w = 0; w < bus->n_workers; w++)
    fe_bus_poll(bus, w);
}

int fe_bus_start(fe_bus_t *bus, fe_diag_t *diag) {
  if (bus == NULL)
    return fe__diag(diag, FE_EINVAL, "bus is NULL");
  if (fe__load_relaxed(&bus->ring.pub.state) != ST_CREATED)
    return fe__diag(diag, FE_ESTATE, "fe_bus_start: the bus was already "
                    "started or stopped");
  if (!bus->host_driven)
    for (uint32_t i = 0; i < bus->n_workers; i++) {
      int r = start_worker(&bus->workers[i], diag);
      if (r != 0) {
        fe__store_relaxed(&bus->ring.abort_workers, 1);
        fe__ring_wake_all(&bus->ring);
        join_workers(bus);
        fe__store_relaxed(&bus->ring.abort_workers, 0);
        return r;
      }
    }
  __atomic_store_n(&bus->ring.pub.state, ST_RUNNING, __ATOMIC_RELEASE);
  /* Recovery's dead letters back into the DLQ, then its unfinished events,
   * before anything the host publishes after this returns. */
  int r = fe__durable_start(&bus->env, poll_all, bus, diag);
  if (r != 0) /* what was re-driven is processed; then the workers exit */
    fe_bus_stop(bus);
  return r;
}

int fe_bus_poll(fe_bus_t *bus, uint32_t worker) {
  if (bus == NULL)
    return FE_EINVAL;
  if (worker >= bus->n_workers)
    return FE_EWORKER;
  uint32_t st = fe__load_acquire(&bus->ring.pub.state);
  if (!bus->host_driven || st == ST_CREATED)
    return FE_ESTATE;
  worker_t *w = &bus->workers[worker];
  uint32_t n = fe__worker_poll(bus, w);
  if (n == 0 && fe__worker_done(bus, w))
    return FE_ESTOPPED;
  return (int)(n > INT32_MAX ? INT32_MAX : n);
}

static int drained(fe_ring_t *r, uint64_t target) {
  return fe__ring_end(r) >= target;
}

int fe_bus_drain(fe_bus_t *bus, uint64_t timeout_ns) {
  if (bus == NULL)
    return FE_EINVAL;
  if (fe__load_acquire(&bus->ring.pub.state) == ST_CREATED)
    return FE_ESTATE;
  uint64_t target = fe__ring_claimed(&bus->ring), deadline = fe__deadline(timeout_ns);
  uint32_t iter = bus->ring.spin_tries; /* drain is not latency critical */
  while (!drained(&bus->ring, target)) {
    if (fe__mono_ns() >= deadline)
      return FE_ETIMEDOUT;
    if (bus->ring.pub.wait == FE_WAIT_PARK) {
      fe__ring_wait_space(&bus->ring, &iter, deadline, drained, target);
    } else if (iter++ < bus->ring.spin_tries + bus->ring.yield_tries) {
      sched_yield();
    } else {
      /* Spin and yield workers do not wake sleepers: poll gently. */
      struct timespec ts = {0, 50000};
      nanosleep(&ts, NULL);
    }
  }
  return 0;
}

int fe_bus_stop(fe_bus_t *bus) {
  if (bus == NULL)
    return FE_EINVAL;
  uint32_t st = fe__load_acquire(&bus->ring.pub.state);
  if (st >= ST_STOPPING)
    return FE_ESTATE;
  if (st == ST_CREATED && fe__ring_claimed(&bus->ring) != 0)
    return FE_ESTATE; /* events are waiting: start the bus to process them */
  uint64_t target = fe__ring_stop(&bus->ring);
  __atomic_store_n(&bus->ring.stop_target, target, __ATOMIC_SEQ_CST);
  fe__ring_wake_all(&bus->ring);
  if (st == ST_CREATED || !bus->host_driven) {
    join_workers(bus);
    __atomic_store_n(&bus->ring.pub.state, ST_STOPPED, __ATOMIC_RELEASE);
  }
  return 0;
}

void fe_bus_destroy(fe_bus_t *bus) {
  if (bus == NULL)
    return;
  uint32_t st = fe__load_acquire(&bus->ring.pub.state);
  if (st == ST_RUNNING || (st == ST_CREATED && fe__ring_claimed(&bus->ring) == 0))
    fe_bus_stop(bus);
  else
    join_workers(bus);
  fe__bus_free(bus);
}

/* ----------------------------------------------------------------- stats */

int fe_bus_stats(const fe_bus_t *bus, fe_bus_stats_t *out) {
  if (bus == NULL || out == NULL)
    return FE_EINVAL;
  memset(out, 0, sizeof *out);
  for (uint32_t i = 0; i < bus->n_ends; i++) {
    out->completed += fe__load_relaxed(&bus->ends[i]->completed_out);
    out->rejected += fe__load_relaxed(&bus->ends[i]->rejected_out);
    out->dead_lettered += fe__load_relaxed(&bus->ends[i]->dead_out);
  }
  out->published = fe__ring_claimed(&bus->ring) - fe__load_relaxed(&bus->ring.voided);
  out->full = fe__load_relaxed(&bus->ring.full);
  out->throttled = fe__load_relaxed(&bus->throttled);
  out->halted = fe__load_relaxed(&bus->halted);
  out->duplicates = fe__load_relaxed(&bus->duplicates);
  out->parks = fe__load_relaxed(&bus->ring.parks);
  out->wakeups = fe__load_relaxed(&bus->ring.wakeups);
  out->lost_wakeups = fe__load_relaxed(&bus->ring.lost_wakeups);
  for (uint32_t i = 0; i < bus->n_workers; i++)
    out->catchups += fe__load_relaxed(&bus->workers[i].catchups);
  return 0;
}

int fe_bus_on_stage_timing(fe_bus_t *bus, fe_stage_timing_fn fn, void *user) {
  if (bus == NULL)
    return FE_EINVAL;
  /* Workers read these after fe_bus_start created them: thread creation
   * orders these stores before. */
  if (fe__load_relaxed(&bus->ring.pub.state) != ST_CREATED)
    return FE_ESTATE;
  bus->on_timing = fn;
  bus->timing_user = user;
  return 0;
}

int fe_bus_stage_stats(const fe_bus_t *bus, uint32_t stage,
                       fe_stage_stats_t *out) {
  if (bus == NULL || out == NULL)
    return FE_EINVAL;
  if (stage >= bus->n_stages)
    return FE_ERANGE;
  const stage_t *st = &bus->stages[stage];
  memset(out, 0, sizeof *out);
  out->processed = UINT64_MAX;
  for (uint32_t s = 0; s < st->n_shards; s++) {
    const consumer_t *c = st->shards[s];
    out->handled += fe__load_relaxed(&c->handled);
    out->rejected += fe__load_relaxed(&c->rejected);
    out->skipped += fe__load_relaxed(&c->skipped);
    out->filtered += fe__load_relaxed(&c->filtered);
    out->retried += fe__load_relaxed(&c->retried);
    out->failed += fe__load_relaxed(&c->failed);
    out->batches += fe__load_relaxed(&c->batches);
    uint64_t q = fe__load_relaxed(&c->seq);
    if (q < out->processed)
      out->processed = q;
  }
  return 0;
}

uint64_t fe_bus_stage_rejects(const fe_bus_t *bus, uint32_t stage,
                              uint32_t reason) {
  if (bus == NULL || stage >= bus->n_stages || reason > FE_REASON_MAX)
    return 0;
  uint64_t n = 0;
  const stage_t *st = &bus->stages[stage];
  for (uint32_t s = 0; s < st->n_shards; s++)
    n += fe__load_relaxed(&st->shards[s]->reasons[reason]);
  return n;
}

int fe_bus_stage_id(const fe_bus_t *bus, const char *name) {
  if (bus == NULL || name == NULL)
    return FE_EINVAL;
  for (uint32_t i = 0; i < bus->n_stages; i++)
    if (strcmp(bus->stages[i].name, name) == 0)
      return (int)i;
  return FE_ENAME;
}

const char *fe_bus_stage_name(const fe_bus_t *bus, uint32_t stage) {
  return bus != NULL && stage < bus->n_stages ? bus->stages[stage].name : NULL;
}

uint32_t fe_bus_capacity(const fe_bus_t *bus) {
  return bus != NULL ? bus->ring.pub.capacity : 0;
}
uint32_t fe_bus_user_size(const fe_bus_t *bus) {
  return bus != NULL ? fe__ring_user_size(&bus->ring) : 0;
}
uint32_t fe_bus_workers(const fe_bus_t *bus) {
  return bus != NULL ? bus->n_workers : 0;
}

/* ------------------------------------------------------------ durability */

int fe_bus_intent(fe_stage_ctx_t *ctx, const fe_event_t *ev) {
  if (ctx == NULL || ev == NULL || ctx->bus == NULL)
    return FE_EINVAL;
  return fe__durable_intent(&ctx->bus->env, ctx->stage, ev);
}

int fe_bus_recovery(const fe_bus_t *bus, fe_bus_recovery_t *out) {
  if (bus == NULL || out == NULL)
    return FE_EINVAL;
  if (bus->env.dur == NULL)
    memset(out, 0, sizeof *out);
  else
    *out = *fe__durable_report(bus->env.dur);
  return 0;
}

fe_journal_t *fe_bus_journal(fe_bus_t *bus) {
  return bus != NULL && bus->env.dur != NULL ? fe__durable_journal(bus->env.dur)
                                             : NULL;
}
