/*
 * The submit path: admission (trading state, throttle), the idempotency
 * claim, the claim of a slot, copying the order in, the publish; bursts
 * (fe_bus_submit_n) and dead-letter redrives.  Sits on the ring (ring.h)
 * and durability (durable.h).
 */
#define _GNU_SOURCE
#include "bus_impl.h"

#include <string.h>

/* The admission checks of fe_bus_publish_order; nothing touches the ring. */
static int admit(fe_bus_t *bus, uint32_t type, const fe_order_t *order) {
  if (bus->trading != NULL) {
    int r = fe__trading_check_order(bus->trading, type, order);
    if (FE_UNLIKELY(r != 0)) {
      __atomic_fetch_add(&bus->halted, 1, __ATOMIC_RELAXED);
      return r;
    }
  }
  if (bus->throttle != NULL && type == FE_EV_NEW_ORDER) {
    int r = fe_throttle_admit(bus->throttle, order->account, 1);
    if (FE_UNLIKELY(r != 0)) {
      if (r == FE_ETHROTTLED)
        __atomic_fetch_add(&bus->throttled, 1, __ATOMIC_RELAXED);
      return r;
    }
  }
  return 0;
}

int fe__claim_wait(fe_bus_t *bus, uint64_t *seq, uint64_t timeout_ns) {
  return fe__ring_claim_wait(&bus->ring, 1, seq, timeout_ns);
}

void fe__publish_one(fe_bus_t *bus, uint64_t seq) { fe__ring_publish(&bus->ring, seq, 1); }

/* The idempotency claim of a new order: 0 with *token (and key and
 * fingerprint in *m's fields), or the table's answer. */
static int idem_claim(fe_bus_t *bus, const fe_order_t *order,
                      const fe_idem_key_t *key, slot_meta_t *m,
                      fe_submit_result_t *out) {
  if (key != NULL) /* fe_bus_submit_n hashed it already */
    m->sub_key = *key;
  else if (fe_idem_key_order(order, &m->sub_key) != 0)
    return FE_EINVAL; /* no client order id: nothing to be idempotent on */
  m->sub_fp = fe_idem_fingerprint(order);
  fe_idem_claim_t c;
  int r = fe_idem_claim(bus->idem, &m->sub_key, m->sub_fp, &c);
  if (FE_LIKELY(r == 0)) {
    m->sub_token = c.token;
    m->sub_flags = META_KEY;
    return 0;
  }
  if (r == FE_EDUPLICATE || r == FE_EINPROGRESS || r == FE_EMISMATCH)
    __atomic_fetch_add(&bus->duplicates, 1, __ATOMIC_RELAXED);
  if (out != NULL) {
    if (r == FE_EDUPLICATE)
      out->outcome = c.outcome;
    else if (r == FE_EINPROGRESS)
      out->lease_expiry_ns = c.expires_ns;
  }
  return r;
}

/* Whether the journaller has finished seq: its progress is released after
 * the group was written (C2). */
static int journaled(fe_ring_t *ring, uint64_t seq) {
  const fe_bus_t *bus = fe__bus_of(ring);
  const consumer_t *j = bus->stages[bus->journal_stage].shards[0];
  return fe__load_acquire(&j->seq) > seq; /* C1 */
}

/* FE_SUBMIT_DURABLE: waits by the bus's wait strategy (the journaller wakes
 * space waiters like the last stages do). */
static int wait_durable(fe_bus_t *bus, uint64_t seq, uint64_t timeout_ns) {
  uint64_t deadline = fe__deadline(timeout_ns);
  uint32_t iter = 0;
  while (!journaled(&bus->ring, seq))
    if (fe__ring_wait_space(&bus->ring, &iter, deadline, journaled, seq) != 0 &&
        !journaled(&bus->ring, seq))
      return FE_ETIMEDOUT;
  return fe__durable_failed(&bus->env) ? FE_EIO : 0;
}

/* fe_bus_submit, with the order's idempotency key when the caller has it
 * (NULL: computed here; never passed for an order without a key). */
/* The user area of a submitted or redriven event: the given bytes, the
 * rest zeroed (the caller checked len <= fe_bus_user_size()), so nothing
 * of the slot's previous event shows through. */
static void put_user(fe_bus_t *bus, fe_event_t *ev, const void *area,
                     uint32_t len) {
  if (len != 0)
    memcpy(fe_event_user(ev), area, len);
  memset((uint8_t *)fe_event_user(ev) + len, 0,
         fe__ring_user_size(&bus->ring) - len);
}

static int submit_one(fe_bus_t *bus, const fe_submit_t *in,
                      fe_submit_result_t *out, const fe_idem_key_t *key) {
  uint64_t s;
  if (FE_UNLIKELY(bus == NULL || in == NULL || in->order == NULL))
    return FE_EINVAL;
  if (FE_UNLIKELY(in->user_len > fe__ring_user_size(&bus->ring) ||
                  (in->user_len && !in->user_area) ||
                  ((in->flags & FE_SUBMIT_DURABLE) && bus->env.dur == NULL) ||
                  (in->flags & ~FE_SUBMIT_DURABLE)))
    return FE_EINVAL;
  if (FE_UNLIKELY(fe__durable_failed(&bus->env)))
    return FE_EIO;
  int r = admit(bus, in->type, in->order);
  if (r != 0)
    return r;
  slot_meta_t sub = {0};
  if (bus->idem != NULL && in->type == FE_EV_NEW_ORDER &&
      (r = idem_claim(bus, in->order, key, &sub, out)) != 0)
    return r;
  if ((r = fe__ring_claim_wait(&bus->ring, 1, &s, in->timeout_ns)) != 0) {
    if (sub.sub_token != 0)
      fe_idem_abandon(bus->idem, sub.sub_token);
    return r;
  }
  fe_event_t *ev = fe__ring_slot(&bus->ring, s);
  ev->type = in->type;
  ev->order = *in->order;
  ev->trace_id = in->trace_id;
  ev->trace = in->trace;
  put_user(bus, ev, in->user_area, in->user_len);
  if (bus->ring.meta != NULL)
    fe__meta_submit(fe__ring_meta(&bus->ring, s), s, &sub, 0);
  fe__ring_publish(&bus->ring, s, 1); /* P1 releases the slot and its meta */
  if (out != NULL)
    out->seq = s;
  if (in->flags & FE_SUBMIT_DURABLE)
    return wait_durable(bus, s, in->timeout_ns);
  return 0;
}

int fe_bus_submit(fe_bus_t *bus, const fe_submit_t *in,
                  fe_submit_result_t *out) {
  return submit_one(bus, in, out, NULL);
}

/* fe_bus_submit_n's pipeline: the home control line of the order
 * 2 * SUBMIT_AHEAD places ahead, the entry SUBMIT_AHEAD ahead (by then its
 * control line has arrived).  keys[] keeps each order's key from the first
 * hint to the second. */
#define SUBMIT_AHEAD 8

static void submit_hint(const fe_bus_t *bus, const fe_submit_t *in,
                        fe_idem_key_t keys[2 * SUBMIT_AHEAD], uint8_t *has,
                        size_t i, int stage) {
  fe_idem_key_t *k = &keys[i % (2 * SUBMIT_AHEAD)];
  uint8_t bit = (uint8_t)(1u << (i % 8));
  if (stage == 1) {
    if (in->type == FE_EV_NEW_ORDER && in->order != NULL &&
        fe_idem_key_order(in->order, k) == 0) {
      has[(i / 8) % 2] |= bit;
      fe_idem_prefetch(bus->idem, k);
    } else {
      has[(i / 8) % 2] &= (uint8_t)~bit;
    }
  } else if (has[(i / 8) % 2] & bit) {
    fe_idem_prefetch_claim(bus->idem, k);
  }
}

int fe_bus_submit_n(fe_bus_t *bus, const fe_submit_t *in, size_t n,
                    fe_submit_result_t *out, int *rc) {
  if (bus == NULL || (n != 0 && (in == NULL || rc == NULL)))
    return FE_EINVAL;
  if (n > INT32_MAX)
    return FE_ERANGE;
  fe_idem_key_t keys[2 * SUBMIT_AHEAD];
  uint8_t has[2] = {0, 0}; /* keys[] slots holding a key, by i % 16 */
  int ok = 0;
  const int hint = bus->idem != NULL;
  for (size_t i = 0; hint && i < n && i < 2 * SUBMIT_AHEAD; i++)
    submit_hint(bus, &in[i], keys, has, i, 1);
  for (size_t i = 0; hint && i < n && i < SUBMIT_AHEAD; i++)
    submit_hint(bus, &in[i], keys, has, i, 2);
  for (size_t i = 0; i < n; i++) {
    /* Order i's key, if the hints computed it (its keys[] slot is not
     * reused before order i + 16's first hint, after this call). */
    const int known = hint && (has[(i / 8) % 2] & (1u << (i % 8)));
    const fe_idem_key_t *k = known ? &keys[i % (2 * SUBMIT_AHEAD)] : NULL;
    rc[i] = submit_one(bus, &in[i], out != NULL ? &out[i] : NULL, k);
    ok += rc[i] == 0;
    /* After order i: its keys[] slot is free for order i + 16. */
    if (hint && i + SUBMIT_AHEAD < n)
      submit_hint(bus, &in[i + SUBMIT_AHEAD], keys, has, i + SUBMIT_AHEAD, 2);
    if (hint && i + 2 * SUBMIT_AHEAD < n)
      submit_hint(bus, &in[i + 2 * SUBMIT_AHEAD], keys, has,
                  i + 2 * SUBMIT_AHEAD, 1);
  }
  return ok;
}

int fe_bus_publish_order(fe_bus_t *bus, uint32_t type, const fe_order_t *order,
                         uint64_t trace_id, uint64_t timeout_ns,
                         uint64_t *seq) {
  fe_submit_t in = {.type = type, .order = order, .trace_id = trace_id,
                    .timeout_ns = timeout_ns};
  fe_submit_result_t out;
  int r = fe_bus_submit(bus, &in, &out);
  if (r == 0 && seq != NULL)
    *seq = out.seq;
  return r;
}

int fe_bus_redrive(const fe_event_t *ev, const void *user_area,
                   uint32_t user_len, uint32_t redrive_count, void *arg) {
  fe_bus_t *bus = arg;
  uint64_t s;
  if (bus == NULL || ev == NULL || (user_len != 0 && user_area == NULL) ||
      user_len > fe__ring_user_size(&bus->ring))
    return FE_EINVAL;
  /* A new order under an idempotency table: take its key back from the
   * dead letter's outcome, so that duplicates wait for this run and then
   * get its outcome (fe_idem_reopen). */
  slot_meta_t sub = {0};
  fe_idem_claim_t claim;
  if (bus->idem != NULL && ev->type == FE_EV_NEW_ORDER &&
      fe_idem_key_order(&ev->order, &sub.sub_key) == 0) {
    sub.sub_fp = fe_idem_fingerprint(&ev->order);
    int r = fe_idem_reopen(bus->idem, &sub.sub_key, sub.sub_fp, &claim);
    fe_idem_entry_t e;
    if (r == FE_EMISMATCH &&
        fe_idem_lookup(bus->idem, &sub.sub_key, &e) == 0 &&
        e.state == FE_IDEM_DONE &&
        e.outcome.status == FE_IDEM_DEAD_LETTERED) {
      /* A stage changed the order's economic fields before it failed (a
       * corrective step): the key's dead letter is this order's all the
       * same; take it back under the fingerprint it was claimed with. */
      sub.sub_fp = e.fingerprint;
      r = fe_idem_reopen(bus->idem, &sub.sub_key, sub.sub_fp, &claim);
    }
    if (r != 0)
      return r; /* finished, running or taken by another order: not now */
    sub.sub_token = claim.token;
    sub.sub_flags = META_KEY;
  }
  int r = fe__ring_claim_wait(&bus->ring, 1, &s, FE_WAIT_FOREVER);
  if (r != 0) {
    if (sub.sub_token != 0) { /* give the key back as it was */
      if (claim.flags & FE_IDEM_F_REOPENED)
        fe_idem_complete(bus->idem, sub.sub_token, &claim.outcome);
      else
        fe_idem_abandon(bus->idem, sub.sub_token);
    }
    return r;
  }
  fe_event_t *dst = fe__ring_slot(&bus->ring, s);
  dst->type = ev->type;
  dst->order = ev->order;
  dst->trace_id = ev->trace_id;
  dst->trace = ev->trace;
  dst->flags = (redrive_count > 0xffff ? 0xffff : redrive_count)
               << FLAGS_REDRIVE_SHIFT;
  put_user(bus, dst, user_area, user_len);
  /* With a journal, ev's seq is the dead letter's event id
   * (dead_letter()). */
  if (bus->ring.meta != NULL)
    fe__meta_submit(fe__ring_meta(&bus->ring, s), s, sub.sub_flags ? &sub : NULL,
                    bus->env.dur != NULL && (ev->flags & FE_EVF_DLQ_EID) ? ev->seq
                                                                     : 0);
  if (bus->audit != NULL) /* audit: out of the dead-letter queue */
    fe_audit_event(bus->audit, dst, s, 0, FE_AUDIT_REDRIVEN, 0, NULL);
  fe__ring_publish(&bus->ring, s, 1);
  return 0;
}

