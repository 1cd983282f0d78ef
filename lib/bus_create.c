/*
 * Bus construction: configuration defaults, validation with precise
 * messages, and allocation of everything the running bus will use.
 */
#define _GNU_SOURCE
#include "bus_impl.h"
#include "sync.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---------------------------------------------------------------- config */

void fe_bus_config_init(fe_bus_config_t *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->capacity = 65536;
  cfg->slot_size = 256;
  cfg->producer = FE_PRODUCER_SINGLE;
  cfg->wait = FE_WAIT_PARK;
  cfg->max_batch = FE_BUS_BATCH_DEFAULT;
  cfg->spin_tries = 1000;
  cfg->journal_user_bytes = UINT32_MAX;
  cfg->catchup_pauses = 64;
  cfg->yield_tries = 50;
  for (int i = 0; i < FE_BUS_MAX_WORKERS; i++)
    cfg->cpu[i] = -1;
}

void fe_stage_def_init(fe_stage_def_t *def) {
  if (def == NULL)
    return;
  memset(def, 0, sizeof *def);
  def->shards = 1;
  fe_retry_policy_init(&def->retry);
}

static int check_geometry(const fe_bus_config_t *cfg, fe_diag_t *d) {
  uint32_t cap = cfg->capacity;
  if (cap < 2 || (cap & (cap - 1)) != 0 || cap > MAX_CAPACITY)
    return fe__diag(d, FE_ECAPACITY,
                    "capacity %u: must be a power of two between 2 and %u",
                    cap, MAX_CAPACITY);
  if (cfg->slot_size < sizeof(fe_event_t) || cfg->slot_size > MAX_SLOT_SIZE)
    return fe__diag(d, FE_ESLOTSIZE,
                    "slot_size %u: must be between %zu (sizeof(fe_event_t)) "
                    "and %u bytes",
                    cfg->slot_size, sizeof(fe_event_t), MAX_SLOT_SIZE);
  if (cfg->producer != FE_PRODUCER_SINGLE && cfg->producer != FE_PRODUCER_MULTI)
    return fe__diag(d, FE_EPRODUCER,
                    "producer %d: use FE_PRODUCER_SINGLE or FE_PRODUCER_MULTI",
                    (int)cfg->producer);
  if (cfg->wait != FE_WAIT_SPIN && cfg->wait != FE_WAIT_YIELD &&
      cfg->wait != FE_WAIT_PARK)
    return fe__diag(d, FE_EWAIT,
                    "wait %d: use FE_WAIT_SPIN, FE_WAIT_YIELD or FE_WAIT_PARK",
                    (int)cfg->wait);
  if (cfg->max_batch != FE_BUS_BATCH_DEFAULT &&
      (cfg->max_batch == 0 || cfg->max_batch > cap))
    return fe__diag(d, FE_EBATCH, "max_batch %u: must be between 1 and the "
                    "capacity (%u)", cfg->max_batch, cap);
  if (cfg->host_driven != 0 && cfg->host_driven != 1)
    return fe__diag(d, FE_EINVAL, "host_driven %d: must be 0 or 1",
                    cfg->host_driven);
  return 0;
}

/* The bus's own stages (journal, outcome) are named "fe.<what>". */
static int internal_name(const char *name) {
  return strncmp(name, "fe.", 3) == 0;
}

/* Worker w runs no stage though workers up to top - 1 are used: said in
 * the host's terms (when only the journal's stages are above the gap, the
 * culprit is journal_worker). */
static int gap_diag(const fe_bus_config_t *cfg, uint32_t w, uint32_t top,
                    fe_diag_t *d) {
  uint32_t host_top = 0;
  for (uint32_t i = 0; i < cfg->n_stages; i++)
    if (!internal_name(cfg->stages[i].name) &&
        cfg->stages[i].worker + cfg->stages[i].shards > host_top)
      host_top = cfg->stages[i].worker + cfg->stages[i].shards;
  if (w >= host_top)
    return fe__diag(d, FE_EWORKER, "journal_worker %u: the stages use workers "
                    "0..%u, so the journal must run on one of them or on "
                    "worker %u (workers are numbered from 0 without gaps)",
                    top - 1, host_top - 1, host_top);
  return fe__diag(d, FE_EWORKER, "worker %u runs no stage, but stages use "
                  "workers up to %u: number workers from 0 without gaps",
                  w, top - 1);
}

static int check_stage(const fe_bus_config_t *cfg, uint32_t i, fe_diag_t *d) {
  const fe_stage_def_t *s = &cfg->stages[i];
  if (s->name == NULL || s->name[0] == '\0')
    return fe__diag(d, FE_ENAME, "stages[%u]: name is missing", i);
  if (strlen(s->name) >= FE_BUS_MAX_NAME)
    return fe__diag(d, FE_ENAME, "stages[%u]: name \"%.40s...\" is longer than "
                    "%d bytes", i, s->name, FE_BUS_MAX_NAME - 1);
  for (uint32_t j = 0; j < i; j++)
    if (strcmp(cfg->stages[j].name, s->name) == 0)
      return internal_name(s->name)
                 ? fe__diag(d, FE_ENAME, "stage \"%s\" (stages[%u]): names "
                            "beginning with \"fe.\" are the bus's own (its "
                            "journal and outcome stages): choose another", s->name, j)
                 : fe__diag(d, FE_ENAME, "stage \"%s\" (stages[%u]): the name "
                            "is already used by stages[%u]", s->name, i, j);
  if ((s->handler == NULL) == (s->batch_handler == NULL))
    return fe__diag(d, FE_ENOHANDLER, "stage \"%s\": set exactly one of handler "
                    "and batch_handler (%s)", s->name,
                    s->handler ? "both are set" : "both are NULL");
  if (s->n_deps > FE_BUS_MAX_DEPS)
    return fe__diag(d, FE_EDEPEND, "stage \"%s\": n_deps %u exceeds %d",
                    s->name, s->n_deps, FE_BUS_MAX_DEPS);
  for (uint32_t k = 0; k < s->n_deps; k++) {
    if (s->deps[k] >= cfg->n_stages)
      return fe__diag(d, FE_EDEPEND, "stage \"%s\": deps[%u] = %u, but there "
                      "are only %u stages", s->name, k, s->deps[k],
                      cfg->n_stages);
    for (uint32_t m = 0; m < k; m++)
      if (s->deps[m] == s->deps[k])
        return fe__diag(d, FE_EDEPEND, "stage \"%s\": deps[%u] repeats stage "
                        "%u", s->name, k, s->deps[k]);
  }
  if (s->fuse > 1)
    return fe__diag(d, FE_EINVAL, "stage \"%s\": fuse %u: must be 0 or 1",
                    s->name, s->fuse);
  if (s->fuse && s->handler == NULL)
    return fe__diag(d, FE_EINVAL, "stage \"%s\": fuse is for handler stages; "
                    "a batch_handler takes its events as one batch", s->name);
  if (s->shards == 0 || s->shards > FE_BUS_MAX_SHARDS)
    return fe__diag(d, FE_ESHARDS, "stage \"%s\": shards %u: must be between 1 "
                    "and %d", s->name, s->shards, FE_BUS_MAX_SHARDS);
  if (s->n_types > FE_STAGE_MAX_TYPES)
    return fe__diag(d, FE_ERANGE, "stage \"%s\": n_types %u exceeds %d",
                    s->name, s->n_types, FE_STAGE_MAX_TYPES);
  for (uint32_t k = 0; k < s->n_types; k++)
    if (s->types[k] == 0)
      return fe__diag(d, FE_ERANGE, "stage \"%s\": types[%u] is 0, which is "
                      "no event type", s->name, k);
  fe_diag_t rd;
  int r = fe_retry_policy_check(&s->retry, &rd);
  if (r != 0)
    return fe__diag(d, r, "stage \"%s\": %s", s->name, rd.msg);
  if (s->worker >= FE_BUS_MAX_WORKERS ||
      s->worker + s->shards > FE_BUS_MAX_WORKERS)
    return fe__diag(d, FE_EWORKER, "stage \"%s\": workers %u..%u: the bus has "
                    "at most %d workers", s->name, s->worker,
                    s->worker + s->shards - 1, FE_BUS_MAX_WORKERS);
  return 0;
}

/* Kahn's algorithm: fills order[] with a topological order of the stages,
 * or reports a stage on a cycle. */
static int topo_sort(const fe_bus_config_t *cfg, uint32_t *order,
                     fe_diag_t *d) {
  uint32_t n = cfg->n_stages, indeg[FE_BUS_MAX_STAGES], head = 0, tail = 0;
  for (uint32_t i = 0; i < n; i++)
    indeg[i] = cfg->stages[i].n_deps;
  for (uint32_t i = 0; i < n; i++)
    if (indeg[i] == 0)
      order[tail++] = i;
  while (head < tail) {
    uint32_t u = order[head++];
    for (uint32_t v = 0; v < n; v++)
      for (uint32_t k = 0; k < cfg->stages[v].n_deps; k++)
        if (cfg->stages[v].deps[k] == u && --indeg[v] == 0)
          order[tail++] = v;
  }
  if (tail == n)
    return 0;
  for (uint32_t i = 0; i < n; i++)
    if (indeg[i] != 0)
      return fe__diag(d, FE_ECYCLE, "stage \"%s\" is on a dependency cycle "
                      "(it depends, directly or not, on itself)",
                      cfg->stages[i].name);
  return FE_ECYCLE; /* unreachable */
}

static int check_config(const fe_bus_config_t *cfg, uint32_t *order,
                        uint32_t *n_workers, fe_diag_t *d) {
  int r = check_geometry(cfg, d);
  if (r)
    return r;
  if (cfg->stages == NULL || cfg->n_stages == 0)
    return fe__diag(d, FE_ENOSTAGES, "no stages: set stages and n_stages");
  if (cfg->n_stages > FE_BUS_MAX_STAGES)
    return fe__diag(d, FE_ENOSTAGES, "n_stages %u exceeds %d", cfg->n_stages,
                    FE_BUS_MAX_STAGES);
  uint64_t used = 0;
  uint32_t top = 0;
  for (uint32_t i = 0; i < cfg->n_stages; i++) {
    if ((r = check_stage(cfg, i, d)) != 0)
      return r;
    const fe_stage_def_t *s = &cfg->stages[i];
    for (uint32_t k = 0; k < s->shards; k++)
      used |= 1ull << (s->worker + k);
    if (s->worker + s->shards > top)
      top = s->worker + s->shards;
  }
  for (uint32_t w = 0; w < top; w++)
    if (!(used & (1ull << w)))
      return gap_diag(cfg, w, top, d);
  for (uint32_t w = 0; w < FE_BUS_MAX_WORKERS; w++)
    if (cfg->cpu[w] < -1 || cfg->cpu[w] >= CPU_SETSIZE)
      return fe__diag(d, FE_ERANGE, "cpu[%u] = %d: must be -1 or a CPU number "
                      "below %d", w, cfg->cpu[w], CPU_SETSIZE);
  *n_workers = top;
  return topo_sort(cfg, order, d);
}

/* ---------------------------------------------------------------- create */

/* The ring and the availability array come straight from mmap: page
 * aligned, zeroed, populated now (no page fault once running), and given
 * back to the system on destroy (a large free() may stay in the heap). */
void fe__bus_free(fe_bus_t *bus) {
  for (uint32_t i = 0; i < bus->n_consumers; i++) {
    if (bus->consumers[i] != NULL)
      free(bus->consumers[i]->gates);
    free(bus->consumers[i]);
  }
  for (uint32_t i = 0; i < bus->n_stages; i++)
    free(bus->stages[i].shards);
  for (uint32_t i = 0; i < bus->n_workers; i++) {
    free(bus->workers[i].list);
    free(bus->workers[i].ext);
  }
  free(bus->consumers);
  free(bus->stages);
  free(bus->workers);
  free(bus->ends);
  free(bus->ring.ends);
  fe__durable_detach(&bus->env);
  fe__durable_free(bus->env.dur);
  fe__ring_free(&bus->ring);
  free(bus);
}

static consumer_t *new_consumer(fe_bus_t *bus, stage_t *st, uint32_t shard,
                                uint32_t worker, uint32_t n_gates) {
  consumer_t *c = fe__zalloc_aligned(sizeof *c);
  if (c == NULL)
    return NULL;
  bus->consumers[bus->n_consumers++] = c;
  c->bus = bus;
  c->stage = st;
  c->shard = shard;
  c->worker = worker;
  c->n_gates = n_gates;
  c->rng = 0x9e3779b97f4a7c15ull * (bus->n_consumers + 1); /* any non-zero */
  c->ctx = (fe_stage_ctx_t){.bus = bus, .stage = st ? st->id : 0,
                            .shard = shard, .worker = worker, .attempt = 1,
                            .priv = c};
  if (n_gates && (c->gates = calloc(n_gates, sizeof *c->gates)) == NULL)
    return NULL;
  return c;
}

/* Appends c to its worker's list (lists are filled in topological order). */
static void assign(fe_bus_t *bus, consumer_t *c) {
  worker_t *w = &bus->workers[c->worker];
  c->index = w->n;
  w->list[w->n++] = c;
}

/* The group pass's view of worker w: for each consumer, which of its gates
 * are consumers earlier on w (up_local); the gates on other workers (ext,
 * without repeats); whether a consumer is gated on the producers. */
static int build_group(worker_t *w) {
  uint32_t cap = 0;
  for (uint32_t i = 0; i < w->n; i++)
    cap += w->list[i]->n_gates;
  if (cap != 0 && (w->ext = calloc(cap, sizeof *w->ext)) == NULL)
    return FE_ENOMEM;
  for (uint32_t i = 0; i < w->n; i++) {
    consumer_t *c = w->list[i];
    if (c->gates == NULL)
      w->root = 1;
    for (uint32_t g = 0; g < c->n_gates; g++) {
      uint32_t j = 0;
      while (j < i && &w->list[j]->seq != c->gates[g])
        j++;
      if (j < i) {
        c->up_local |= 1ull << j;
        continue;
      }
      uint32_t k = 0;
      while (k < w->n_ext && w->ext[k] != c->gates[g])
        k++;
      if (k == w->n_ext)
        w->ext[w->n_ext++] = c->gates[g];
    }
  }
  /* The group reads its outside gates once for all its consumers, so none
   * of them may wait for one of ours (a chain that crosses between two
   * workers and back): each outside gate's stage must have no ancestor
   * here.  More consumers than a mask holds: the per-consumer passes. */
  uint64_t here = 0;
  for (uint32_t i = 0; i < w->n; i++)
    if (w->list[i]->stage != NULL)
      here |= 1ull << w->list[i]->stage->id;
  w->group = w->n <= 64;
  for (uint32_t k = 0; k < w->n_ext; k++) {
    const consumer_t *owner =
        (const consumer_t *)((const char *)w->ext[k] - offsetof(consumer_t, seq));
    if (owner->stage == NULL || (owner->stage->ancestors & here) != 0)
      w->group = 0;
  }
  w->aligned = w->group;
  return 0;
}

/* Marks every worker gated on `up` in its wake mask. */
static void link_gate(consumer_t *down, uint32_t k, consumer_t *up) {
  down->gates[k] = &up->seq;
  if (down->worker != up->worker)
    up->wake_mask |= 1ull << down->worker;
}

static int build_stages(fe_bus_t *bus, const fe_bus_config_t *cfg,
                        const uint32_t *order) {
  for (uint32_t i = 0; i < cfg->n_stages; i++) {
    const fe_stage_def_t *d = &cfg->stages[i];
    stage_t *st = &bus->stages[i];
    strcpy(st->name, d->name);
    st->id = i;
    st->fn = d->handler;
    st->batch_fn = d->batch_handler;
    st->user = d->user;
    st->key = d->key;
    st->key_user = d->key_user;
    st->n_shards = d->shards;
    st->retry = d->retry;
    st->parallel_to_journal = d->parallel_to_journal;
    st->fuse = d->fuse;
    st->all_types = d->n_types == 0;
    for (uint32_t k = 0; k < d->n_types; k++) {
      if (d->types[k] < 64)
        st->type_mask |= 1ull << d->types[k];
      else
        st->big_types[st->n_big_types++] = d->types[k];
    }
    st->n_deps = d->n_deps;
    memcpy(st->deps, d->deps, sizeof st->deps);
    for (uint32_t k = 0; k < d->n_deps; k++)
      bus->stages[d->deps[k]].has_downstream = 1;
    if ((st->shards = calloc(d->shards, sizeof *st->shards)) == NULL)
      return FE_ENOMEM;
  }
  /* Ancestor sets, in topological order so deps are complete first. */
  for (uint32_t i = 0; i < cfg->n_stages; i++) {
    stage_t *st = &bus->stages[order[i]];
    for (uint32_t k = 0; k < st->n_deps; k++)
      st->ancestors |= (1ull << st->deps[k]) | bus->stages[st->deps[k]].ancestors;
  }
  for (uint32_t i = 0; i < cfg->n_stages; i++) {
    stage_t *st = &bus->stages[order[i]];
    uint32_t n_gates = 0;
    for (uint32_t k = 0; k < st->n_deps; k++)
      n_gates += bus->stages[st->deps[k]].n_shards;
    for (uint32_t sh = 0; sh < st->n_shards; sh++) {
      consumer_t *c = new_consumer(bus, st, sh, cfg->stages[st->id].worker + sh,
                                   n_gates);
      if (c == NULL)
        return FE_ENOMEM;
      st->shards[sh] = c;
      c->ancestors = st->ancestors;
      uint32_t g = 0;
      for (uint32_t k = 0; k < st->n_deps; k++) {
        stage_t *up = &bus->stages[st->deps[k]];
        for (uint32_t u = 0; u < up->n_shards; u++)
          link_gate(c, g++, up->shards[u]);
      }
      if (st->n_deps == 0)
        bus->ring.pub.root_wake_mask |= 1ull << c->worker;
      assign(bus, c);
    }
  }
  return 0;
}

/* The producers' gate: the shards of the only sink stage, which also count
 * outcomes (every other stage is its ancestor), or else an accountant gated
 * on every sink, run by the last sink's first worker. */
static int build_ends(fe_bus_t *bus, const uint32_t *order) {
  uint32_t sinks = 0, last = 0, n_gates = 0;
  for (uint32_t i = 0; i < bus->n_stages; i++)
    if (!bus->stages[order[i]].has_downstream) {
      sinks++;
      last = order[i];
      n_gates += bus->stages[order[i]].n_shards;
    }
  stage_t *sink = &bus->stages[last];
  if (sinks == 1) {
    bus->n_ends = sink->n_shards;
    if ((bus->ends = calloc(bus->n_ends, sizeof *bus->ends)) == NULL)
      return FE_ENOMEM;
    for (uint32_t s = 0; s < sink->n_shards; s++) {
      bus->ends[s] = sink->shards[s];
      bus->ends[s]->counts_outcome = 1;
      bus->ends[s]->wakes_space = 1;
    }
    return 0;
  }
  consumer_t *acc = new_consumer(bus, NULL, 0, sink->shards[0]->worker, n_gates);
  if (acc == NULL || (bus->ends = calloc(1, sizeof *bus->ends)) == NULL)
    return FE_ENOMEM;
  uint32_t g = 0;
  for (uint32_t i = 0; i < bus->n_stages; i++)
    if (!bus->stages[i].has_downstream)
      for (uint32_t s = 0; s < bus->stages[i].n_shards; s++)
        link_gate(acc, g++, bus->stages[i].shards[s]);
  acc->counts_outcome = 1;
  acc->wakes_space = 1;
  bus->ends[0] = acc;
  bus->n_ends = 1;
  assign(bus, acc);
  return 0;
}

static int bus_alloc(fe_bus_t *bus, const fe_bus_config_t *cfg) {
  uint32_t n_cons = 1;
  for (uint32_t i = 0; i < cfg->n_stages; i++)
    n_cons += cfg->stages[i].shards;
  if (fe__ring_alloc(&bus->ring, cfg->capacity, cfg->slot_size, cfg->producer,
                     0) != 0 ||
      (bus->stages = calloc(cfg->n_stages, sizeof *bus->stages)) == NULL ||
      (bus->consumers = calloc(n_cons, sizeof *bus->consumers)) == NULL ||
      (bus->workers = fe__zalloc_aligned(bus->n_workers * sizeof *bus->workers)) == NULL)
    return FE_ENOMEM;
  bus->n_stages = cfg->n_stages;
  for (uint32_t w = 0; w < bus->n_workers; w++) {
    bus->workers[w].bus = bus;
    bus->workers[w].index = w;
    bus->workers[w].cpu = cfg->cpu[w];
    if ((bus->workers[w].list = calloc(n_cons, sizeof(consumer_t *))) == NULL)
      return FE_ENOMEM;
  }
  return 0;
}

/* With a journal or an idempotency table, the host's stage table plus the
 * internal stages: "fe.journal" (no upstream; every host stage not marked
 * parallel_to_journal waits for it) and "fe.outcome" (after every sink, the
 * journaller included).  Both run on journal_worker, one shard each. */
static int add_internal_stages(const fe_bus_config_t *cfg, fe_bus_config_t *x,
                               fe_stage_def_t *st, uint32_t *jid,
                               uint32_t *oid, fe_diag_t *d) {
  uint32_t n = cfg->n_stages;
  int journal = cfg->journal != NULL;
  *jid = *oid = UINT32_MAX;
  if (cfg->idem == NULL && !journal)
    return 0;
  if (cfg->stages == NULL || n == 0 || n > FE_BUS_MAX_STAGES)
    return 0; /* check_config reports it */
  if (n + 1 + journal > FE_BUS_MAX_STAGES)
    return fe__diag(d, FE_ENOSTAGES, "n_stages %u: a bus with %s keeps %d "
                    "stages for itself, so at most %d are left", n,
                    journal ? "a journal" : "an idempotency table",
                    1 + journal, FE_BUS_MAX_STAGES - 1 - journal);
  if (cfg->journal_worker >= FE_BUS_MAX_WORKERS)
    return fe__diag(d, FE_EWORKER, "journal_worker %u: must be below %d",
                    cfg->journal_worker, FE_BUS_MAX_WORKERS);
  memcpy(st, cfg->stages, n * sizeof *st);
  uint64_t upstream = 0; /* host stages some host stage depends on */
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t k = 0; k < st[i].n_deps && k < FE_BUS_MAX_DEPS; k++)
      if (st[i].deps[k] < n)
        upstream |= 1ull << st[i].deps[k];
  uint32_t next = n;
  if (journal) {
    *jid = next++;
    fe_stage_def_init(&st[*jid]);
    st[*jid].name = "fe.journal";
    st[*jid].batch_handler = fe__journal_stage;
    st[*jid].worker = cfg->journal_worker;
    for (uint32_t i = 0; i < n; i++) {
      if (st[i].parallel_to_journal)
        continue;
      if (st[i].n_deps >= FE_BUS_MAX_DEPS)
        return fe__diag(d, FE_EDEPEND, "stage \"%s\": it already has %d "
                        "upstream stages, so it cannot also wait for the "
                        "journal (set parallel_to_journal only if it has no "
                        "effect outside the process)",
                        st[i].name ? st[i].name : "?", FE_BUS_MAX_DEPS);
      st[i].deps[st[i].n_deps++] = *jid;
    }
  }
  *oid = next++;
  fe_stage_def_t *o = &st[*oid];
  fe_stage_def_init(o);
  o->name = "fe.outcome";
  o->batch_handler = fe__outcome_stage;
  o->worker = cfg->journal_worker;
  for (uint32_t i = 0; i < n; i++) {
    if (upstream & (1ull << i))
      continue;
    if (o->n_deps == FE_BUS_MAX_DEPS)
      return fe__diag(d, FE_EDEPEND, "more than %d sink stages: the outcome "
                      "stage that follows them all can wait for at most %d",
                      FE_BUS_MAX_DEPS - journal, FE_BUS_MAX_DEPS - journal);
    o->deps[o->n_deps++] = i;
  }
  if (journal) {
    int journal_feeds = 0;
    for (uint32_t i = 0; i < n; i++)
      journal_feeds |= !st[i].parallel_to_journal;
    if (!journal_feeds) {
      if (o->n_deps == FE_BUS_MAX_DEPS)
        return fe__diag(d, FE_EDEPEND, "too many sink stages for the "
                        "outcome stage (at most %d)", FE_BUS_MAX_DEPS - 1);
      o->deps[o->n_deps++] = *jid;
    }
  }
  *x = *cfg;
  x->stages = st;
  x->n_stages = next;
  return 0;
}

/* The ring's view of the graph: the sequences producers are gated on,
 * each worker's park word. */
static int link_ring(fe_bus_t *bus) {
  fe_ring_t *r = &bus->ring;
  if ((r->ends = calloc(bus->n_ends, sizeof *r->ends)) == NULL)
    return FE_ENOMEM;
  for (uint32_t i = 0; i < bus->n_ends; i++)
    r->ends[i] = &bus->ends[i]->seq;
  r->n_ends = bus->n_ends;
  r->n_workers = bus->n_workers;
  for (uint32_t w = 0; w < bus->n_workers; w++)
    r->futex[w] = &bus->workers[w].futex;
  return 0;
}

/* Whether worker w runs the fused pass (worker.c): a group of 2..FUSE_MAX
 * consumers, every one a handler stage that set fuse, with one shard and
 * no type filter, on a bus with no audit trail (whose per-event records
 * the fused pass does not write). */
static int fusable(const fe_bus_t *bus, const worker_t *w) {
  if (!w->group || w->n < 2 || w->n > FUSE_MAX || bus->audit != NULL)
    return 0;
  for (uint32_t i = 0; i < w->n; i++) {
    const stage_t *st = w->list[i]->stage;
    if (st == NULL || st->fn == NULL || !st->fuse || st->n_shards != 1 ||
        !st->all_types)
      return 0;
  }
  return 1;
}

static int build_groups(fe_bus_t *bus) {
  for (uint32_t w = 0; w < bus->n_workers; w++) {
    int r = build_group(&bus->workers[w]);
    if (r != 0)
      return r;
    bus->workers[w].fused = fusable(bus, &bus->workers[w]);
  }
  return 0;
}

int fe_bus_create(const fe_bus_config_t *cfg, fe_bus_t **out, fe_diag_t *diag) {
  uint32_t order[FE_BUS_MAX_STAGES], n_workers = 0;
  if (cfg == NULL || out == NULL)
    return fe__diag(diag, FE_EINVAL, "%s is NULL", cfg == NULL ? "cfg" : "out");
  const fe_bus_config_t *host_cfg = cfg;
  fe_bus_config_t xcfg;
  fe_stage_def_t xst[FE_BUS_MAX_STAGES];
  uint32_t jid, oid;
  int r = add_internal_stages(cfg, &xcfg, xst, &jid, &oid, diag);
  if (r)
    return r;
  if (oid != UINT32_MAX)
    cfg = &xcfg;
  r = check_config(cfg, order, &n_workers, diag);
  if (r)
    return r;
  fe_bus_t *bus = fe__zalloc_aligned(sizeof *bus);
  if (bus == NULL)
    return fe__diag(diag, FE_ENOMEM, "cannot allocate the bus");
  bus->max_batch = cfg->max_batch != FE_BUS_BATCH_DEFAULT ? cfg->max_batch
                  : cfg->capacity < 256                    ? cfg->capacity
                                                           : 256;
  bus->ring.spin_tries = cfg->spin_tries;
  bus->ring.yield_tries = cfg->yield_tries;
  bus->catchup_pauses = cfg->catchup_pauses;
  bus->ring.pub.wait = cfg->wait;
  bus->host_driven = cfg->host_driven;
  bus->n_workers = n_workers;
  bus->trading = cfg->trading;
  bus->throttle = cfg->throttle;
  bus->dlq = cfg->dlq;
  bus->on_dead_letter = cfg->on_dead_letter;
  bus->audit = cfg->audit;
  bus->dead_letter_user = cfg->dead_letter_user;
  bus->now_ns = cfg->now_ns;
  bus->clock_user = cfg->clock_user;
  bus->idem = cfg->idem;
  bus->env = (fe_durable_env_t){.ring = &bus->ring, .idem = cfg->idem,
                                .dlq = cfg->dlq,
                                .on_outcome = cfg->on_outcome,
                                .outcome_user = cfg->outcome_user,
                                .host_driven = cfg->host_driven};
  for (uint32_t i = 0; i < cfg->n_stages && i < 64; i++)
    if (cfg->stages[i].parallel_to_journal)
      bus->env.parallel_stages |= 1ull << i;
  bus->journal_stage = jid;
  bus->outcome_stage = oid;
  if (bus->now_ns == NULL)
    fe_clock_init(NULL); /* calibrates once per process (~20 ms) */
  if ((r = bus_alloc(bus, cfg)) != 0 || (r = build_stages(bus, cfg, order)) != 0 ||
      (r = build_ends(bus, order)) != 0 || (r = build_groups(bus)) != 0 ||
      (r = link_ring(bus)) != 0) {
    fe__bus_free(bus);
    return fe__diag(diag, r, "cannot allocate a ring of %u slots of %u bytes "
                    "and its %u workers", cfg->capacity, cfg->slot_size,
                    n_workers);
  }
  if (oid != UINT32_MAX) {
    bus->stages[oid].user = &bus->env;
    /* The outcome stage sees every event, rejected and dead ones too. */
    bus->stages[oid].shards[0]->ancestors = 0;
    bus->stages[oid].ancestors = 0;
    if (fe__ring_alloc_meta(&bus->ring) != 0) {
      fe__bus_free(bus);
      return fe__diag(diag, FE_ENOMEM, "cannot allocate the slots' "
                      "durability data");
    }
  }
  if (jid != UINT32_MAX) {
    bus->stages[jid].user = &bus->env;
    /* FE_SUBMIT_DURABLE waits for the journaller as producers wait for
     * space: its progress wakes them. */
    bus->stages[jid].shards[0]->wakes_space = 1;
    if ((r = fe__durable_open(&bus->env, host_cfg, diag)) != 0) {
      fe__bus_free(bus);
      return r;
    }
  }
  *out = bus;
  return 0;
}
