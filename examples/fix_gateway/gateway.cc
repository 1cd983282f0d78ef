/*
 * fix_gateway: a FIX 4.4 order gateway -- QuickFIX in front, libfinevent's
 * exactly-once bus behind, a simulated venue at the end.
 *
 *   fix_gateway --port N --dir DIR [--config FILE] [--fsync none|group]
 *               [--die-after-sends N]   (tests: crash after the N-th send)
 *
 * DIR holds everything that survives a restart: DIR/journal (the bus's
 * journal), DIR/store (QuickFIX's message store), DIR/venue.log (what the
 * simulated venue executed, append-only).  Restarting on the same DIR
 * recovers: orders journaled before a crash finish, and clients' resends
 * of them (same ClOrdID, PossResend=Y) get their stored outcome.
 *
 * Threads, and what each one does:
 *   - QuickFIX session threads (ThreadedSocketAcceptor: one per connected
 *     client) run fromApp(): they map the FIX message onto an fe_order_t
 *     (fix_map.c) and submit it with fe_bus_submit() (multi-producer).
 *     They never send.  An answer they know at once (a malformed message,
 *     a duplicate ClOrdID answered from the idempotency table, a refusal
 *     at admission) goes into their own lane of the outbox.
 *   - The bus worker (one library thread) runs, in order: the journaller
 *     ("fe.journal"), in parallel with it the risk checks ("risk", pure
 *     checks: parallel_to_journal), then "execution" (fe_gateway_stage:
 *     intent journaled, then the venue call), then the outcome stage
 *     ("fe.outcome"), whose on_outcome hook turns each finished event into
 *     its reports (ack, fills, reject, cancel, cancel-reject) and puts them
 *     into the outcome lane of the outbox.  The ack therefore always
 *     follows the journal write of its order.
 *   - The sender thread is the outbox's only consumer: it builds the FIX
 *     messages and calls Session::sendToTarget().  It holds no lock of its
 *     own while sending (QuickFIX takes the session's).
 *   - The main thread sets up, then waits for SIGINT/SIGTERM to stop.
 * The outbox (fix_outbox.c) is one SPSC ck_ring per producer: lock-free,
 * no allocation; a full lane makes its producer wait (backpressure), for
 * at most 100 ms: then the report is dropped and counted, so that a client
 * that stops reading cannot stall the bus for the others (it resends and
 * gets its stored outcome).
 *
 * Semantics: see the README's "FIX gateway" section.
 */
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <quickfix/Application.h>
#include <quickfix/FileStore.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/ThreadedSocketAcceptor.h>

#include <finevent/finevent.h>

#include "fix_map.h"
#include "fix_outbox.h"

namespace {

/* ------------------------------------------------------------ instruments */

const int64_t kScale = FE_PRICE_SCALE;
const int64_t kTick = FE_PRICE_SCALE / 100;     /* 0.01 */
const int64_t kSlice = 100;                     /* units per fill */
const int kMaxFills = 4;
const int64_t kMaxQty = 1000000;                /* per order */
const int64_t kMaxNotional = 10000000 * kScale; /* per order, currency */

/* The simulated venue's instruments.  A marketable order fills in slices of
 * kSlice units, one tick worse each, at most kMaxFills slices and at most
 * `liquidity` units; the rest rests until cancelled.  HALT is listed but
 * halted: the venue rejects its orders (OrdRejReason 2). */
struct Instrument {
  const char *symbol;
  int64_t ref;       /* first fill price */
  int64_t liquidity; /* units one order can take */
  int halted;
};
const Instrument kInstruments[] = {
    {"AAPL", 190 * kScale, 1000000, 0},
    {"MSFT", 41050 * kScale / 100, 100, 0},
    {"IBM", 15025 * kScale / 100, 1000000, 0},
    {"HALT", 10 * kScale, 0, 1},
};

const Instrument *instrument(const char sym[FE_SYMBOL_MAX]) {
  for (const Instrument &i : kInstruments)
    if (strncmp(i.symbol, sym, FE_SYMBOL_MAX) == 0)
      return &i;
  return nullptr;
}

/* ------------------------------------------------------------ user area */

struct Fill {
  int64_t qty, px;
};

/* The slot's user area.  The first kJournaled bytes are journaled with the
 * event (who sent it, what a cancel cancels); the rest is written by the
 * execution stage and read by the outcome hook. */
struct UserArea {
  char comp[16];                   /* the client's CompID */
  char orig[FE_CLORDID_MAX];       /* cancel: OrigClOrdID */
  /* -- not journaled -- */
  uint32_t venue_done;             /* the fields below are set */
  uint32_t nfills;
  int64_t cum, leaves, avg_px;
  char order_id[16];               /* the venue's OrderID */
  Fill fills[kMaxFills];
  char ord_status;                 /* the order's status at the venue */
};
const uint32_t kJournaled = offsetof(UserArea, venue_done);

UserArea *ua(const fe_event_t *ev) {
  return static_cast<UserArea *>(fe_event_user(const_cast<fe_event_t *>(ev)));
}

std::string fixed(const char *s, size_t cap) {
  return std::string(s, strnlen(s, cap));
}

/* ------------------------------------------------------------ the venue */

/* The simulated venue: an in-memory book of the orders it took, and an
 * append-only file of everything it did (one line each), replayed at
 * start.  The file is what "the venue saw" for recovery's in-doubt
 * question and for the tests.  It is the outside world to the bus: its
 * mutex is the venue's business, taken only on the execution stage and by
 * the in-doubt hook. */
class Venue {
 public:
  struct Order {
    uint64_t account = 0;
    int64_t qty = 0;
    UserArea result{};
    int rejected = 0;
  };
  struct Cancel {
    int result = 0; /* 0 done, else enum fgw_reason */
    UserArea res{};
  };

  bool open(const std::string &path) {
    load(path);
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    return fd_ >= 0;
  }

  /* A new order: 0 taken (result filled in), or FGW_R_VENUE_CLOSED. */
  int execute(const fe_order_t &o, UserArea *u) {
    std::lock_guard<std::mutex> l(mu_);
    std::string id = fixed(o.client_order_id, FE_CLORDID_MAX);
    int r = take(id, o, u);
    char line[160];
    if (r == 0)
      snprintf(line, sizeof line, "N %s %llu %u %u %lld %lld %s\n",
               esc(id).c_str(), (unsigned long long)o.account, o.side, o.type,
               (long long)o.quantity, (long long)o.price,
               esc(fixed(o.symbol, FE_SYMBOL_MAX)).c_str());
    else
      snprintf(line, sizeof line, "R %s\n", esc(id).c_str());
    append(line);
    return r;
  }

  /* A cancel: 0 done, FGW_R_CXL_UNKNOWN or FGW_R_CXL_TOO_LATE.  The same
   * cancel id again gets its first answer. */
  int cancel(const std::string &cxl, const std::string &orig, uint64_t account,
             UserArea *u) {
    std::lock_guard<std::mutex> l(mu_);
    auto seen = cancels_.find(cxl);
    if (seen != cancels_.end()) {
      copy_result(u, seen->second.res);
      return seen->second.result;
    }
    int r = do_cancel(cxl, orig, account, u);
    char line[160];
    snprintf(line, sizeof line, "C %s %s %llu\n", esc(cxl).c_str(),
             esc(orig).c_str(), (unsigned long long)account);
    append(line);
    return r;
  }

  /* Did the venue get this id (an order or a cancel)?  For in-doubt. */
  bool saw(const std::string &id) {
    std::lock_guard<std::mutex> l(mu_);
    return orders_.count(id) != 0 || cancels_.count(id) != 0;
  }

  /* What the venue answered for an id it saw: for an order re-driven as
   * already sent.  Returns 0/reason as execute()/cancel(), -1 unseen. */
  int recall(const std::string &id, UserArea *u) {
    std::lock_guard<std::mutex> l(mu_);
    auto o = orders_.find(id);
    if (o != orders_.end()) {
      copy_result(u, o->second.result);
      return o->second.rejected ? FGW_R_VENUE_CLOSED : 0;
    }
    auto c = cancels_.find(id);
    if (c != cancels_.end()) {
      copy_result(u, c->second.res);
      return c->second.result;
    }
    return -1;
  }

 private:
  static void copy_result(UserArea *dst, const UserArea &src) {
    memcpy(reinterpret_cast<char *>(dst) + kJournaled,
           reinterpret_cast<const char *>(&src) + kJournaled,
           sizeof(UserArea) - kJournaled);
  }

  /* Fills are a pure function of the order: a replay of the file rebuilds
   * the same book. */
  int take(const std::string &id, const fe_order_t &o, UserArea *u) {
    Order &vo = orders_[id];
    vo.account = o.account;
    vo.qty = o.quantity;
    UserArea &r = vo.result;
    r.venue_done = 1;
    snprintf(r.order_id, sizeof r.order_id, "V%llu", ++next_id_);
    const Instrument *ins = instrument(o.symbol);
    if (ins == nullptr || ins->halted) {
      vo.rejected = 1;
      r.ord_status = '8';
      copy_result(u, r);
      return FGW_R_VENUE_CLOSED;
    }
    int64_t room = std::min(o.quantity, ins->liquidity);
    __int128 notional = 0;
    int buy = o.side == FE_SIDE_BUY;
    for (int k = 0; k < kMaxFills && r.cum < room; k++) {
      int64_t px = buy ? ins->ref + k * kTick : ins->ref - k * kTick;
      if (o.type == FE_ORD_LIMIT && (buy ? px > o.price : px < o.price))
        break;
      int64_t q = std::min(kSlice, room - r.cum);
      r.fills[r.nfills++] = Fill{q, px};
      r.cum += q;
      notional += (__int128)q * px;
    }
    r.leaves = o.quantity - r.cum;
    r.avg_px = r.cum ? (int64_t)((notional + r.cum / 2) / r.cum) : 0;
    r.ord_status = r.cum == 0 ? '0' : r.leaves == 0 ? '2' : '1';
    copy_result(u, r);
    return 0;
  }

  int do_cancel(const std::string &cxl, const std::string &orig,
                uint64_t account, UserArea *u) {
    Cancel &c = cancels_[cxl];
    auto o = orders_.find(orig);
    if (o == orders_.end() || o->second.account != account) {
      c.result = FGW_R_CXL_UNKNOWN;
      c.res.ord_status = '8';
    } else if (o->second.rejected || o->second.result.leaves == 0) {
      c.result = FGW_R_CXL_TOO_LATE;
      c.res = o->second.result;
    } else {
      UserArea &r = o->second.result;
      r.leaves = 0;
      r.ord_status = '4';
      c.res = r;
      c.result = 0;
    }
    c.res.venue_done = 1;
    copy_result(u, c.res);
    return c.result;
  }

  void append(const char *line) {
    size_t n = strlen(line);
    if (fd_ >= 0 && write(fd_, line, n) != (ssize_t)n)
      fprintf(stderr, "fix_gateway: venue log write failed: %s\n", strerror(errno));
  }

  /* Ids go into the file with bytes outside '!'..'~' and '%' as %XX. */
  static std::string esc(const std::string &s) {
    std::string o;
    for (unsigned char c : s) {
      if (c > ' ' && c < 0x7f && c != '%') {
        o += (char)c;
      } else {
        char b[4];
        snprintf(b, sizeof b, "%%%02X", c);
        o += b;
      }
    }
    return o;
  }
  static std::string unesc(const std::string &s) {
    std::string o;
    for (size_t i = 0; i < s.size(); i++) {
      if (s[i] == '%' && i + 2 < s.size()) {
        o += (char)strtol(s.substr(i + 1, 2).c_str(), nullptr, 16);
        i += 2;
      } else {
        o += s[i];
      }
    }
    return o;
  }

  void load(const std::string &path) {
    FILE *f = fopen(path.c_str(), "r");
    if (f == nullptr)
      return;
    char line[512];
    while (fgets(line, sizeof line, f) != nullptr) {
      char a[200], b[200], sym[64];
      unsigned long long acct;
      unsigned side, type;
      long long qty, px;
      UserArea scratch{};
      if (sscanf(line, "N %199s %llu %u %u %lld %lld %63s", a, &acct, &side,
                 &type, &qty, &px, sym) == 7) {
        fe_order_t o;
        memset(&o, 0, sizeof o);
        std::string id = unesc(a), s = unesc(sym);
        memcpy(o.client_order_id, id.data(), std::min(id.size(), sizeof o.client_order_id));
        memcpy(o.symbol, s.data(), std::min(s.size(), sizeof o.symbol));
        o.account = acct, o.side = (uint8_t)side, o.type = (uint8_t)type;
        o.quantity = qty, o.price = px;
        take(id, o, &scratch);
      } else if (sscanf(line, "R %199s", a) == 1) {
        fe_order_t o;
        memset(&o, 0, sizeof o);
        memcpy(o.symbol, "HALT", 4);
        take(unesc(a), o, &scratch);
      } else if (sscanf(line, "C %199s %199s %llu", a, b, &acct) == 3) {
        do_cancel(unesc(a), unesc(b), acct, &scratch);
      }
    }
    fclose(f);
  }

  std::mutex mu_;
  std::map<std::string, Order> orders_;
  std::map<std::string, Cancel> cancels_;
  unsigned long long next_id_ = 0;
  int fd_ = -1;
};

/* ------------------------------------------------------------ the gateway */

struct Gateway {
  std::vector<FIX::SessionID> sessions; /* index = outbox lane */
  std::vector<std::string> comps;       /* the client's CompID per index */
  std::unique_ptr<std::atomic<int>[]> online;
  uint32_t outcome_lane = 0;            /* = sessions.size() */
  fgw_outbox_t *outbox = nullptr;
  Venue venue;
  fe_bus_t *bus = nullptr;
  fe_gateway_t *gw = nullptr;
  std::atomic<uint64_t> dropped{0};     /* reports for a session offline */
  std::atomic<uint64_t> dropped_full{0};/* reports the outbox had no room for */

  int session_of(const char comp[16]) const {
    for (size_t i = 0; i < comps.size(); i++)
      if (comps[i] == fixed(comp, 16))
        return (int)i;
    return -1;
  }
};

Gateway g;

void base_report(fgw_report_t *r, int kind, int session, const fe_order_t &o) {
  memset(r, 0, sizeof *r);
  r->kind = (uint16_t)kind;
  r->session = (uint16_t)session;
  r->side = o.side == FE_SIDE_BUY ? '1' : o.side == FE_SIDE_SELL ? '2' : '5';
  r->order_qty = o.quantity;
  memcpy(r->clordid, o.client_order_id, FE_CLORDID_MAX);
  memcpy(r->symbol, o.symbol, FE_SYMBOL_MAX);
}

void set_text(fgw_report_t *r, const char *t) {
  snprintf(r->text, sizeof r->text, "%s", t);
}

/* Risk checks: pure, so they run in parallel with the journaller. */
fe_verdict_t risk(fe_stage_ctx_t *ctx, fe_event_t *ev, void *) {
  const fe_order_t &o = ev->order;
  if (o.account == 0)
    return fe_reject(ctx, FGW_R_UNKNOWN_ACCOUNT);
  const Instrument *ins = instrument(o.symbol);
  if (ins == nullptr)
    return fe_reject(ctx, FGW_R_UNKNOWN_SYMBOL);
  if (o.type == FE_ORD_STOP || o.type == FE_ORD_STOP_LIMIT)
    return fe_reject(ctx, FGW_R_UNSUPPORTED);
  if (o.quantity <= 0 || o.quantity > kMaxQty)
    return fe_reject(ctx, FGW_R_BAD_QUANTITY);
  if (o.type == FE_ORD_LIMIT && o.price <= 0)
    return fe_reject(ctx, FGW_R_BAD_PRICE);
  int64_t px = o.type == FE_ORD_LIMIT ? o.price : ins->ref;
  if ((__int128)o.quantity * px > (__int128)kMaxNotional)
    return fe_reject(ctx, FGW_R_NOTIONAL);
  return FE_CONTINUE;
}

/* --die-after-sends N (for tests): the process dies right after the N-th
 * venue call, before the order's outcome is journaled, so that recovery
 * finds it in doubt.  0: never.  Read on the bus worker only. */
unsigned long die_after_sends;

/* The venue call behind fe_gateway_stage (after the intent is journaled). */
fe_verdict_t venue_send(fe_stage_ctx_t *ctx, fe_event_t *ev, uint32_t,
                        void *) {
  static unsigned long sends;
  UserArea *u = ua(ev);
  int r;
  if (ev->type == FE_EV_CANCEL)
    r = g.venue.cancel(fixed(ev->order.client_order_id, FE_CLORDID_MAX),
                       fixed(u->orig, FE_CLORDID_MAX), ev->order.account, u);
  else
    r = g.venue.execute(ev->order, u);
  if (die_after_sends != 0 && ++sends == die_after_sends)
    _exit(9); /* a crash between the venue and the outcome record */
  return r == 0 ? FE_CONTINUE : fe_reject(ctx, (uint32_t)r);
}

/* The execution stage: the library's gateway stage, then, for an order
 * recovery found already sent (so not sent again), the venue's record of
 * what it did with it. */
fe_verdict_t execution(fe_stage_ctx_t *ctx, fe_event_t *ev, void *) {
  UserArea *u = ua(ev);
  u->venue_done = 0;
  fe_verdict_t v = fe_gateway_stage(ctx, ev, g.gw);
  if (v != FE_CONTINUE || u->venue_done)
    return v;
  int r = g.venue.recall(fixed(ev->order.client_order_id, FE_CLORDID_MAX), u);
  if (r < 0) {
    ctx->text = "in doubt, and the venue has no record";
    return fe_fail(ctx, FGW_R_VENUE_CLOSED);
  }
  return r == 0 ? FE_CONTINUE : fe_reject(ctx, (uint32_t)r);
}

int in_doubt(const fe_event_t *ev, void *) {
  return g.venue.saw(fixed(ev->order.client_order_id, FE_CLORDID_MAX)) ? 1 : 0;
}

/* Hands r to the sender.  A lane still full after 100 ms means the sender
 * is stuck in a blocking send to a client that does not read its socket:
 * the report is dropped (counted) rather than stall the bus for every
 * client; the client's resend gets the stored outcome. */
void put(uint32_t lane, const fgw_report_t &r) {
  if (fgw_outbox_put(g.outbox, lane, &r, 100000000u) != 0)
    g.dropped_full.fetch_add(1, std::memory_order_relaxed);
}

/* The outcome path: on the bus worker, for every finished event, after its
 * journal write.  Fills in what the idempotency table keeps for duplicates
 * and hands the event's reports to the sender. */
void on_outcome(const fe_event_t *ev, fe_idem_outcome_t *out, void *) {
  const UserArea *u = ua(ev);
  const fe_order_t &o = ev->order;
  int s = g.session_of(u->comp);
  int dead = out->status == FE_IDEM_DEAD_LETTERED;
  fgw_report_t r;
  if (ev->type == FE_EV_NEW_ORDER && out->status == FE_IDEM_COMPLETED) {
    out->filled_quantity = u->cum;
    out->avg_price = u->avg_px;
    memcpy(out->venue_order_id, u->order_id, sizeof u->order_id);
    if (s < 0)
      return;
    base_report(&r, FGW_REP_NEW, s, o);
    memcpy(r.order_id, u->order_id, sizeof u->order_id);
    r.ord_status = '0';
    r.leaves_qty = o.quantity;
    put(g.outcome_lane, r);
    __int128 notional = 0;
    for (uint32_t k = 0; k < u->nfills && k < (uint32_t)kMaxFills; k++) {
      r.kind = FGW_REP_FILL;
      r.exec_n = k + 1;
      r.last_qty = u->fills[k].qty;
      r.last_px = u->fills[k].px;
      r.cum_qty += r.last_qty;
      r.leaves_qty = o.quantity - r.cum_qty;
      notional += (__int128)r.last_qty * r.last_px;
      r.avg_px = (int64_t)((notional + r.cum_qty / 2) / r.cum_qty);
      r.ord_status = r.leaves_qty == 0 ? '2' : '1';
      put(g.outcome_lane, r);
    }
  } else if (ev->type == FE_EV_NEW_ORDER) {
    if (s < 0)
      return;
    const char *text;
    base_report(&r, FGW_REP_REJECT, s, o);
    r.reason = fgw_ord_rej_reason(out->reason, dead, &text);
    r.ord_status = '8';
    r.exec_n = (uint32_t)out->ref;
    set_text(&r, text);
    put(g.outcome_lane, r);
  } else if (ev->type == FE_EV_CANCEL && s >= 0) {
    int ok = out->status == FE_IDEM_COMPLETED;
    base_report(&r, ok ? FGW_REP_CANCELED : FGW_REP_CANCEL_REJECT, s, o);
    memcpy(r.orig_clordid, u->orig, FE_CLORDID_MAX);
    memcpy(r.order_id, u->order_id, sizeof u->order_id);
    r.cum_qty = u->cum;
    r.avg_px = u->avg_px;
    r.leaves_qty = 0;
    r.ord_status = u->ord_status ? u->ord_status : '8';
    r.reason = ok ? 0 : fgw_cxl_rej_reason(dead ? 0 : out->reason);
    set_text(&r, ok ? "" : r.reason == 1 ? "unknown order" : r.reason == 0 ? "too late to cancel" : "cancel refused");
    put(g.outcome_lane, r);
  }
}

/* ------------------------------------------------------------ QuickFIX side */

class App : public FIX::Application {
 public:
  void onCreate(const FIX::SessionID &) override {}
  void onLogon(const FIX::SessionID &s) override { mark(s, 1); }
  void onLogout(const FIX::SessionID &s) override { mark(s, 0); }
  void toAdmin(FIX::Message &, const FIX::SessionID &) override {}
  void toApp(FIX::Message &, const FIX::SessionID &) throw(FIX::DoNotSend) override {}
  void fromAdmin(const FIX::Message &, const FIX::SessionID &) throw(
      FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
      FIX::RejectLogon) override {}

  /* On the session's thread. */
  void fromApp(const FIX::Message &m, const FIX::SessionID &sid) throw(
      FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
      FIX::UnsupportedMessageType) override {
    const std::string &type = m.getHeader().getField(FIX::FIELD::MsgType);
    if (type != "D" && type != "F")
      throw FIX::UnsupportedMessageType();
    int s = index_of(sid);
    if (s < 0)
      return;
    fgw_field_t f[128];
    size_t n = 0;
    for (FIX::FieldMap::const_iterator i = m.begin(); i != m.end() && n < 128; ++i)
      f[n++] = fgw_field_t{i->getTag(), i->getString().data(), i->getString().size()};
    uint32_t seq = 0;
    try {
      seq = (uint32_t)std::stoul(m.getHeader().getField(FIX::FIELD::MsgSeqNum));
    } catch (...) {
    }
    if (type == "D")
      new_order(s, f, n, seq);
    else
      cancel(s, f, n, seq);
  }

 private:
  static int index_of(const FIX::SessionID &sid) {
    for (size_t i = 0; i < g.sessions.size(); i++)
      if (g.sessions[i] == sid)
        return (int)i;
    return -1;
  }
  static void mark(const FIX::SessionID &sid, int on) {
    int s = index_of(sid);
    if (s >= 0)
      g.online[s].store(on, std::memory_order_release);
  }

  /* Reject(3) or BusinessMessageReject(j) for a malformed message. */
  static void malformed(int s, const fgw_verdict_t &v, uint32_t seq,
                        const char *msg_type, const fe_order_t &o) {
    fgw_report_t r;
    base_report(&r, v.kind == FGW_SESSION_REJECT ? FGW_REP_SESSION_REJECT
                                                 : FGW_REP_BUSINESS_REJECT, s, o);
    r.reason = v.reason;
    r.ref_tag = v.tag;
    r.ref_seq = seq;
    snprintf(r.ref_msg_type, sizeof r.ref_msg_type, "%s", msg_type);
    set_text(&r, v.text);
    put((uint32_t)s, r);
  }

  /* Stamps and submits o with its journaled user area u (comp set
   * here); fe_bus_submit()'s answer.  A full ring is waited on for 1 s. */
  static int submit(int s, uint32_t type, fe_order_t *o, UserArea *u,
                    fe_submit_result_t *res) {
    snprintf(u->comp, sizeof u->comp, "%s", g.comps[s].c_str());
    o->recv_ts_ns = fe_clock_realtime_ns();
    fe_submit_t in;
    memset(&in, 0, sizeof in);
    in.type = type;
    in.order = o;
    in.user_area = u;
    in.user_len = kJournaled;
    in.timeout_ns = 1000000000u;
    return fe_bus_submit(g.bus, &in, res);
  }

  static void new_order(int s, const fgw_field_t *f, size_t n, uint32_t seq) {
    fe_order_t o;
    fgw_verdict_t v;
    fgw_map_new_order(f, n, &o, &v);
    fgw_report_t r;
    if (v.kind == FGW_SESSION_REJECT || v.kind == FGW_BUSINESS_REJECT)
      return malformed(s, v, seq, "D", o);
    if (v.kind == FGW_ORDER_REJECT) {
      base_report(&r, FGW_REP_REJECT, s, o);
      r.reason = v.reason;
      r.ord_status = '8';
      set_text(&r, v.text);
      return put((uint32_t)s, r);
    }
    UserArea u;
    memset(&u, 0, sizeof u);
    fe_submit_result_t res;
    int rc = submit(s, FE_EV_NEW_ORDER, &o, &u, &res);
    if (rc == 0)
      return; /* the outcome path answers */
    if (rc == FE_EDUPLICATE || rc == FE_EINPROGRESS) {
      /* The stored outcome (or "still working") back, not a second order. */
      base_report(&r, FGW_REP_STATUS, s, o);
      const fe_idem_outcome_t &out = res.outcome;
      memcpy(r.order_id, out.venue_order_id, 16);
      if (rc == FE_EINPROGRESS) {
        r.ord_status = 'A';
        r.leaves_qty = o.quantity;
      } else if (out.status == FE_IDEM_COMPLETED) {
        r.cum_qty = out.filled_quantity;
        r.avg_px = out.avg_price;
        r.leaves_qty = o.quantity - out.filled_quantity;
        r.ord_status = r.cum_qty == 0 ? '0' : r.leaves_qty == 0 ? '2' : '1';
      } else {
        const char *text;
        r.reason = fgw_ord_rej_reason(out.reason, out.status == FE_IDEM_DEAD_LETTERED, &text);
        r.ord_status = '8';
        set_text(&r, text);
      }
      return put((uint32_t)s, r);
    }
    const char *text;
    base_report(&r, FGW_REP_REJECT, s, o);
    r.reason = fgw_ord_rej_error(rc, &text);
    r.ord_status = '8';
    set_text(&r, text);
    put((uint32_t)s, r);
  }

  static void cancel(int s, const fgw_field_t *f, size_t n, uint32_t seq) {
    fe_order_t o;
    fgw_verdict_t v;
    UserArea u;
    memset(&u, 0, sizeof u);
    fgw_map_cancel(f, n, &o, u.orig, &v);
    fgw_report_t r;
    if (v.kind == FGW_SESSION_REJECT || v.kind == FGW_BUSINESS_REJECT)
      return malformed(s, v, seq, "F", o);
    if (v.kind == FGW_OK && submit(s, FE_EV_CANCEL, &o, &u, nullptr) == 0)
      return; /* the outcome path answers */
    base_report(&r, FGW_REP_CANCEL_REJECT, s, o);
    memcpy(r.orig_clordid, u.orig, FE_CLORDID_MAX);
    r.ord_status = '8';
    r.reason = v.kind == FGW_ORDER_REJECT ? v.reason : 2;
    set_text(&r, v.kind == FGW_ORDER_REJECT ? v.text : "cancel refused by the gateway");
    put((uint32_t)s, r);
  }
};

/* ------------------------------------------------------------ the sender */

std::string px(int64_t p) {
  char b[32];
  fgw_format_price(p, b, sizeof b);
  return b;
}

std::string num(int64_t v) { return std::to_string(v); }

FIX::Message build(const fgw_report_t &r, uint64_t *serial) {
  FIX::Message m;
  std::string clordid = fixed(r.clordid, sizeof r.clordid);
  std::string oid = r.order_id[0] ? fixed(r.order_id, sizeof r.order_id) : "NONE";
  if (r.kind == FGW_REP_SESSION_REJECT || r.kind == FGW_REP_BUSINESS_REJECT) {
    int session = r.kind == FGW_REP_SESSION_REJECT;
    m.getHeader().setField(FIX::FIELD::MsgType, session ? "3" : "j");
    m.setField(45, num(r.ref_seq));             /* RefSeqNum */
    m.setField(372, r.ref_msg_type);            /* RefMsgType */
    if (session) {
      m.setField(373, num(r.reason));           /* SessionRejectReason */
      if (r.ref_tag)
        m.setField(371, num(r.ref_tag));        /* RefTagID */
    } else {
      m.setField(380, num(r.reason));           /* BusinessRejectReason */
      if (!clordid.empty())
        m.setField(379, clordid);               /* BusinessRejectRefID */
    }
    m.setField(58, fixed(r.text, sizeof r.text));
    return m;
  }
  if (r.kind == FGW_REP_CANCEL_REJECT) {
    m.getHeader().setField(FIX::FIELD::MsgType, "9");
    m.setField(37, oid);
    m.setField(11, clordid);
    m.setField(41, fixed(r.orig_clordid, sizeof r.orig_clordid));
    m.setField(39, std::string(1, r.ord_status));
    m.setField(434, "1");                       /* CxlRejResponseTo */
    m.setField(102, num(r.reason));             /* CxlRejReason */
    m.setField(58, fixed(r.text, sizeof r.text));
    return m;
  }
  m.getHeader().setField(FIX::FIELD::MsgType, "8");
  const char *exec_type = r.kind == FGW_REP_NEW ? "0" : r.kind == FGW_REP_FILL ? "F"
                        : r.kind == FGW_REP_REJECT ? "8" : r.kind == FGW_REP_CANCELED ? "4" : "I";
  std::string exec_id;
  if (r.kind == FGW_REP_NEW || r.kind == FGW_REP_FILL)
    exec_id = oid + "-" + num(r.exec_n); /* the same after a restart */
  else if (r.kind == FGW_REP_CANCELED)
    exec_id = oid + "-X-" + clordid;
  else
    exec_id = "G" + num((int64_t)(serial[0]++)) + "-" + num((int64_t)serial[1]);
  m.setField(37, oid);
  m.setField(17, exec_id);
  m.setField(150, exec_type);
  m.setField(39, std::string(1, r.ord_status));
  m.setField(11, clordid);
  if (r.kind == FGW_REP_CANCELED)
    m.setField(41, fixed(r.orig_clordid, sizeof r.orig_clordid));
  m.setField(55, fixed(r.symbol, sizeof r.symbol));
  m.setField(54, std::string(1, r.side));
  m.setField(38, num(r.order_qty));
  m.setField(14, num(r.cum_qty));
  m.setField(151, num(r.leaves_qty));
  m.setField(6, px(r.avg_px));
  if (r.kind == FGW_REP_FILL) {
    m.setField(32, num(r.last_qty));
    m.setField(31, px(r.last_px));
  }
  if (r.ord_status == '8' && r.kind != FGW_REP_CANCELED) {
    m.setField(103, num(r.reason));
    m.setField(58, fixed(r.text, sizeof r.text));
  }
  return m;
}

void sender() {
  uint64_t serial[2] = {0, fe_clock_realtime_ns()};
  fgw_report_t batch[64];
  int n;
  while ((n = fgw_outbox_take(g.outbox, batch, 64, 100000000u)) >= 0) {
    for (int i = 0; i < n; i++) {
      const fgw_report_t &r = batch[i];
      if (r.session >= g.sessions.size() ||
          !g.online[r.session].load(std::memory_order_acquire)) {
        g.dropped.fetch_add(1, std::memory_order_relaxed);
        continue; /* the client resends: the stored outcome answers */
      }
      FIX::Message m = build(r, serial);
      try {
        FIX::Session::sendToTarget(m, g.sessions[r.session]);
      } catch (const FIX::Exception &e) {
        g.dropped.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
}

/* ------------------------------------------------------------ main */

int usage() {
  fprintf(stderr, "usage: fix_gateway --port N --dir DIR [--config FILE] [--fsync none|group]"
                  " [--die-after-sends N]\n");
  return 2;
}

int die(const char *what, const fe_diag_t &d) {
  fprintf(stderr, "fix_gateway: %s: %s\n", what, d.msg);
  return 1;
}

}  // namespace

int main(int argc, char **argv) {
  std::string config = "examples/fix_gateway/gateway.cfg", dir;
  int port = 0;
  fe_fsync_t fsync_policy = FE_FSYNC_GROUP;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port")
      port = atoi(v.c_str());
    else if (k == "--dir")
      dir = v;
    else if (k == "--config")
      config = v;
    else if (k == "--die-after-sends")
      die_after_sends = strtoul(v.c_str(), nullptr, 10);
    else if (k == "--fsync" && (v == "none" || v == "group"))
      fsync_policy = v == "none" ? FE_FSYNC_NONE : FE_FSYNC_GROUP;
    else
      return usage();
  }
  if (argc % 2 != 1 || port <= 0 || port > 65535 || dir.empty())
    return usage();
  mkdir(dir.c_str(), 0755);
  std::string store = dir + "/store", jdir = dir + "/journal";
  mkdir(store.c_str(), 0755);
  mkdir(jdir.c_str(), 0755);

  /* Signals go to the main thread only: block them before any thread. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  FIX::SessionSettings settings;
  try {
    settings = FIX::SessionSettings(config);
    FIX::Dictionary defaults = settings.get();
    defaults.setInt("SocketAcceptPort", port);
    defaults.setString("FileStorePath", store);
    settings.set(defaults);
  } catch (const FIX::ConfigError &e) {
    fprintf(stderr, "fix_gateway: %s: %s\n", config.c_str(), e.what());
    return 1;
  }
  for (const FIX::SessionID &s : settings.getSessions()) {
    g.sessions.push_back(s);
    g.comps.push_back(s.getTargetCompID().getValue());
  }
  g.online.reset(new std::atomic<int>[g.sessions.size()]);
  for (size_t i = 0; i < g.sessions.size(); i++)
    g.online[i].store(0);
  g.outcome_lane = (uint32_t)g.sessions.size();
  if (g.sessions.empty() || g.sessions.size() > 64 ||
      fgw_outbox_create(g.outcome_lane + 1, 4096, &g.outbox) != 0) {
    fprintf(stderr, "fix_gateway: 1..64 sessions, and memory for the outbox\n");
    return 1;
  }
  if (!g.venue.open(dir + "/venue.log")) {
    fprintf(stderr, "fix_gateway: %s/venue.log: %s\n", dir.c_str(), strerror(errno));
    return 1;
  }

  fe_diag_t d;
  fe_idem_config_t ic;
  fe_idem_config_init(&ic);
  ic.capacity = 1u << 20;
  ic.now_ns = fe_clock_wall_fn; /* entries restored from the journal */
  fe_idem_t *idem;
  if (fe_idem_create(&ic, &idem, &d) != 0)
    return die("idempotency table", d);
  fe_journal_config_t jc;
  fe_journal_config_init(&jc);
  jc.dir = jdir.c_str();
  jc.fsync = fsync_policy;
  fe_gateway_config_t gc;
  fe_gateway_config_init(&gc);
  gc.send = venue_send;
  if (fe_gateway_create(&gc, &g.gw, &d) != 0)
    return die("gateway stage", d);
  fe_stage_def_t st[2];
  fe_stage_def_init(&st[0]);
  st[0].name = "risk";
  st[0].handler = risk;
  st[0].parallel_to_journal = 1;
  st[0].n_types = 1;
  st[0].types[0] = FE_EV_NEW_ORDER;
  fe_stage_def_init(&st[1]);
  st[1].name = "execution";
  st[1].handler = execution;
  st[1].n_deps = 1;
  st[1].deps[0] = 0;
  fe_bus_config_t cfg;
  fe_bus_config_init(&cfg);
  cfg.capacity = 4096;
  cfg.slot_size = sizeof(fe_event_t) + sizeof(UserArea); /* rounded up to lines */
  cfg.producer = FE_PRODUCER_MULTI;
  cfg.wait = FE_WAIT_PARK;
  cfg.stages = st;
  cfg.n_stages = 2;
  cfg.idem = idem;
  cfg.journal = &jc;
  cfg.journal_user_bytes = kJournaled;
  cfg.in_doubt = in_doubt;
  cfg.on_outcome = on_outcome;
  if (fe_bus_create(&cfg, &g.bus, &d) != 0)
    return die("bus", d);
  if (fe_bus_user_size(g.bus) < sizeof(UserArea)) {
    fprintf(stderr, "fix_gateway: slot too small for the user area\n");
    return 1;
  }

  std::thread send_thread(sender);
  if (fe_bus_start(g.bus, &d) != 0) /* re-drives what the journal left */
    return die("bus start", d);
  fe_bus_recovery_t rv;
  fe_bus_recovery(g.bus, &rv);

  App app;
  FIX::FileStoreFactory stores(settings);
  int rc = 0;
  try {
    FIX::ThreadedSocketAcceptor acceptor(app, stores, settings);
    acceptor.start();
    printf("fix_gateway: ready on port %d, %zu sessions; recovered %llu events "
           "(%llu finished, %llu re-driven, %llu in doubt and sent)\n",
           port, g.sessions.size(), (unsigned long long)rv.events,
           (unsigned long long)rv.finished, (unsigned long long)rv.redriven,
           (unsigned long long)rv.in_doubt_sent);
    fflush(stdout);
    int sig;
    sigwait(&sigs, &sig);
    acceptor.stop();
  } catch (const FIX::Exception &e) {
    fprintf(stderr, "fix_gateway: acceptor: %s\n", e.what());
    rc = 1;
  }
  fe_bus_stop(g.bus);
  fgw_outbox_close(g.outbox);
  send_thread.join();
  fe_bus_stats_t bs;
  fe_bus_stats(g.bus, &bs);
  printf("fix_gateway: stopped: %llu events, %llu completed, %llu rejected, "
         "%llu duplicates, %llu reports dropped (session offline), %llu dropped (outbox full)\n",
         (unsigned long long)bs.published, (unsigned long long)bs.completed,
         (unsigned long long)bs.rejected, (unsigned long long)bs.duplicates,
         (unsigned long long)g.dropped.load(), (unsigned long long)g.dropped_full.load());
  fe_bus_destroy(g.bus);
  fe_gateway_destroy(g.gw);
  fe_idem_destroy(idem);
  fgw_outbox_destroy(g.outbox);
  return rc;
}
