/*
 * test_fix_gateway: the FIX gateway (examples/fix_gateway) as a child
 * process, driven by a real QuickFIX SocketInitiator with four sessions
 * over 127.0.0.1.  Every wait is on a condition with a bound.
 *
 * Built (C++14) and run only when g++ and QuickFIX are present: `make
 * test-fix`, and `make test` through it.
 */
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <sys/stat.h>

extern "C" {
#include <cmocka.h>
}

#include "../examples/fix_gateway/fix_client.h"

#ifndef FGW_BIN
#error "FGW_BIN: path of the fix_gateway binary"
#endif
#ifndef FGW_CFG
#error "FGW_CFG: path of examples/fix_gateway/gateway.cfg"
#endif

namespace {

const int kWait = 20000; /* ms: "must happen" on a loaded CI box */

struct Rig {
  std::string dir;
  int port = 0;
  fixc::GatewayProcess gw;
  std::unique_ptr<fixc::Client> client;
};
Rig *rig;

bool start_gateway(const std::vector<std::string> &extra = {}) {
  std::vector<std::string> args = {"--fsync", "none"};
  args.insert(args.end(), extra.begin(), extra.end());
  return rig->gw.start(FGW_BIN, FGW_CFG, rig->port, rig->dir, args, kWait);
}

bool all_logged_off() {
  for (int s = 0; s < 4; s++)
    if (rig->client->logged_on(s))
      return false;
  return true;
}

int setup(void **) {
  rig = new Rig;
  char tmpl[] = "/tmp/fe_fixgw.XXXXXX";
  if (mkdtemp(tmpl) == nullptr)
    return -1;
  rig->dir = tmpl;
  /* A port free when probed may be taken before the gateway binds it:
   * three tries on different ports. */
  bool up = false;
  for (int attempt = 0; attempt < 3 && !up; attempt++) {
    rig->port = fixc::free_port(21000 + (int)((getpid() + attempt * 1231) % 5000));
    up = rig->port != 0 && start_gateway();
    if (!up)
      rig->gw.stop(SIGKILL, 1000);
  }
  if (!up) {
    fprintf(stderr, "gateway did not start on port %d\n", rig->port);
    return -1;
  }
  rig->client.reset(new fixc::Client(rig->port, 4));
  if (!rig->client->wait_until([] { return rig->client->all_logged_on(); }, kWait)) {
    fprintf(stderr, "the four sessions did not log on\n");
    return -1;
  }
  return 0;
}

int teardown(void **) {
  rig->client.reset();
  int st = rig->gw.stop(SIGTERM, kWait);
  std::string cmd = "rm -rf '" + rig->dir + "'";
  if (system(cmd.c_str()) != 0)
    fprintf(stderr, "could not remove %s\n", rig->dir.c_str());
  delete rig;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

fixc::Client &C() { return *rig->client; }

/* The reports of session s for ClOrdID id, once pred holds on them. */
std::vector<fixc::Msg> wait_reports(int s, const std::string &id,
                                    const std::function<bool(const std::vector<fixc::Msg> &)> &pred) {
  std::vector<fixc::Msg> got;
  C().wait_until([&] {
    got = C().find(s, 11, id);
    return pred(got);
  }, kWait);
  return got;
}

/* How many times the venue took each ClOrdID ("N id ..." lines). */
std::map<std::string, int> venue_orders() {
  std::map<std::string, int> seen;
  std::ifstream f(rig->dir + "/venue.log");
  std::string kind, id, rest;
  while (f >> kind >> id && std::getline(f, rest))
    if (kind == "N" || kind == "R")
      seen[id]++;
  return seen;
}

/* ---------------------------------------------------------------- tests */

void ack_then_fills(void **) {
  /* AAPL fills 100 at 190.00, 100 at 190.01, 50 at 190.02. */
  C().send(0, fixc::new_order("A-1", "1001", "AAPL", "1", "250", "2", "191"));
  auto r = wait_reports(0, "A-1", [](const std::vector<fixc::Msg> &v) { return v.size() >= 4; });
  assert_int_equal(r.size(), 4);
  assert_string_equal(r[0].get(150).c_str(), "0");
  assert_string_equal(r[0].get(39).c_str(), "0");
  assert_string_equal(r[0].get(151).c_str(), "250");
  const char *last_px[] = {"190", "190.01", "190.02"}, *cum[] = {"100", "200", "250"};
  const char *status[] = {"1", "1", "2"}, *avg[] = {"190", "190.005", "190.008"};
  for (int k = 0; k < 3; k++) {
    const fixc::Msg &m = r[k + 1];
    assert_string_equal(m.get(150).c_str(), "F");
    assert_string_equal(m.get(31).c_str(), last_px[k]);
    assert_string_equal(m.get(14).c_str(), cum[k]);
    assert_string_equal(m.get(39).c_str(), status[k]);
    assert_string_equal(m.get(6).c_str(), avg[k]);
    assert_string_equal(m.get(37).c_str(), r[0].get(37).c_str());
  }
  assert_string_equal(r[3].get(151).c_str(), "0");
  /* A limit that does not cross rests: only the acknowledgement.  Its
   * price has eight decimals and goes through exactly. */
  C().send(0, fixc::new_order("A-2", "1001", "AAPL", "2", "10", "2", "190.12345678"));
  r = wait_reports(0, "A-2", [](const std::vector<fixc::Msg> &v) { return !v.empty(); });
  assert_int_equal(r.size(), 1);
  assert_string_equal(r[0].get(39).c_str(), "0");
  /* A market order fills at the first price. */
  C().send(0, fixc::new_order("A-3", "1001", "IBM", "2", "30", "1", ""));
  r = wait_reports(0, "A-3", [](const std::vector<fixc::Msg> &v) { return v.size() >= 2; });
  assert_int_equal(r.size(), 2);
  assert_string_equal(r[1].get(31).c_str(), "150.25");
  assert_string_equal(r[1].get(39).c_str(), "2");
}

void rejects_with_reasons(void **) {
  struct Case {
    const char *id, *acct, *sym, *qty, *type, *px, *reason;
  } cases[] = {
      {"R-sym", "1002", "ZZZZ", "10", "2", "5", "1"},      /* unknown symbol */
      {"R-halt", "1002", "HALT", "10", "2", "5", "2"},     /* exchange closed */
      {"R-qty", "1002", "AAPL", "2000000", "2", "1", "13"},/* incorrect qty */
      {"R-stop", "1002", "AAPL", "10", "3", "", "11"},     /* unsupported */
      {"R-lim", "1002", "AAPL", "60000", "2", "190", "3"}, /* exceeds limit */
      {"R-frac", "1002", "AAPL", "10.5", "2", "190", "13"},/* not whole */
      {"R-acct", "ABC", "AAPL", "10", "2", "190", "15"},   /* unknown account */
      {"R-acct0", "0", "AAPL", "10", "2", "190", "15"},    /* account 0 */
  };
  for (const Case &c : cases)
    C().send(2, fixc::new_order(c.id, c.acct, c.sym, "1", c.qty, c.type, c.px));
  for (const Case &c : cases) {
    auto r = wait_reports(2, c.id, [](const std::vector<fixc::Msg> &v) { return !v.empty(); });
    assert_int_equal(r.size(), 1);
    assert_string_equal(r[0].get(150).c_str(), "8");
    assert_string_equal(r[0].get(39).c_str(), "8");
    if (r[0].get(103) != c.reason)
      fail_msg("%s: OrdRejReason %s, expected %s (%s)", c.id, r[0].get(103).c_str(), c.reason,
               r[0].get(58).c_str());
    assert_false(r[0].get(58).empty());
  }
}

void duplicate_gets_stored_outcome(void **) {
  C().send(3, fixc::new_order("D-1", "1004", "AAPL", "1", "100", "2", "191"));
  auto r = wait_reports(3, "D-1", [](const std::vector<fixc::Msg> &v) { return v.size() >= 2; });
  assert_int_equal(r.size(), 2);
  std::string oid = r[0].get(37);
  /* The same order again (a client's resend), on the same session and on
   * another one: the stored outcome, not a second order. */
  C().send(3, fixc::new_order("D-1", "1004", "AAPL", "1", "100", "2", "191", true));
  C().send(0, fixc::new_order("D-1", "1004", "AAPL", "1", "100", "2", "191", true));
  r = wait_reports(3, "D-1", [](const std::vector<fixc::Msg> &v) { return v.size() >= 3; });
  auto other = wait_reports(0, "D-1", [](const std::vector<fixc::Msg> &v) { return !v.empty(); });
  for (const fixc::Msg &m : {r[2], other[0]}) {
    assert_string_equal(m.get(150).c_str(), "I");
    assert_string_equal(m.get(39).c_str(), "2");
    assert_string_equal(m.get(14).c_str(), "100");
    assert_string_equal(m.get(6).c_str(), "190");
    assert_string_equal(m.get(37).c_str(), oid.c_str());
  }
  /* The same ClOrdID with another order: duplicate order (6). */
  C().send(3, fixc::new_order("D-1", "1004", "AAPL", "1", "200", "2", "191"));
  r = wait_reports(3, "D-1", [](const std::vector<fixc::Msg> &v) { return v.size() >= 4; });
  assert_int_equal(r.size(), 4);
  assert_string_equal(r[3].get(39).c_str(), "8");
  assert_string_equal(r[3].get(103).c_str(), "6");
  /* A rejected order's duplicate gets the reject again, reason and all. */
  C().send(3, fixc::new_order("D-2", "1004", "ZZZZ", "1", "5", "2", "1"));
  wait_reports(3, "D-2", [](const std::vector<fixc::Msg> &v) { return !v.empty(); });
  C().send(3, fixc::new_order("D-2", "1004", "ZZZZ", "1", "5", "2", "1", true));
  r = wait_reports(3, "D-2", [](const std::vector<fixc::Msg> &v) { return v.size() >= 2; });
  assert_int_equal(r.size(), 2);
  assert_string_equal(r[1].get(150).c_str(), "I");
  assert_string_equal(r[1].get(103).c_str(), "1");
  /* The venue took D-1 once and never saw D-2. */
  auto seen = venue_orders();
  assert_int_equal(seen["D-1"], 1);
  assert_int_equal(seen.count("D-2"), 0);
}

void cancel_and_cancel_reject(void **) {
  /* MSFT has 100 units of liquidity: 300 fills 100, 200 rest. */
  C().send(1, fixc::new_order("C-1", "1003", "MSFT", "1", "300", "2", "411"));
  auto r = wait_reports(1, "C-1", [](const std::vector<fixc::Msg> &v) { return v.size() >= 2; });
  assert_int_equal(r.size(), 2);
  assert_string_equal(r[1].get(39).c_str(), "1");
  assert_string_equal(r[1].get(151).c_str(), "200");
  assert_string_equal(r[1].get(31).c_str(), "410.5");
  C().send(1, fixc::cancel("X-1", "C-1", "1003", "MSFT", "1"));
  auto x = wait_reports(1, "X-1", [](const std::vector<fixc::Msg> &v) { return !v.empty(); });
  assert_string_equal(x[0].get(35).c_str(), "8");
  assert_string_equal(x[0].get(150).c_str(), "4");
  assert_string_equal(x[0].get(39).c_str(), "4");
  assert_string_equal(x[0].get(41).c_str(), "C-1");
  assert_string_equal(x[0].get(14).c_str(), "100");
  assert_string_equal(x[0].get(151).c_str(), "0");
  /* Again: nothing left to cancel (too late, 0). */
  C().send(1, fixc::cancel("X-2", "C-1", "1003", "MSFT", "1"));
  x = wait_reports(1, "X-2", [](const std::vector<fixc::Msg> &v) { return !v.empty(); });
  assert_string_equal(x[0].get(35).c_str(), "9");
  assert_string_equal(x[0].get(102).c_str(), "0");
  assert_string_equal(x[0].get(39).c_str(), "4");
  /* A filled order: too late as well. */
  C().send(1, fixc::new_order("C-2", "1003", "AAPL", "1", "10", "2", "191"));
  wait_reports(1, "C-2", [](const std::vector<fixc::Msg> &v) { return v.size() >= 2; });
  C().send(1, fixc::cancel("X-3", "C-2", "1003", "AAPL", "1"));
  x = wait_reports(1, "X-3", [](const std::vector<fixc::Msg> &v) { return !v.empty(); });
  assert_string_equal(x[0].get(35).c_str(), "9");
  assert_string_equal(x[0].get(102).c_str(), "0");
  /* Unknown order, and someone else's account: unknown (1). */
  C().send(1, fixc::cancel("X-4", "NOPE", "1003", "AAPL", "1"));
  C().send(1, fixc::cancel("X-5", "C-1", "9999", "MSFT", "1"));
  for (const char *id : {"X-4", "X-5"}) {
    x = wait_reports(1, id, [](const std::vector<fixc::Msg> &v) { return !v.empty(); });
    assert_string_equal(x[0].get(35).c_str(), "9");
    assert_string_equal(x[0].get(102).c_str(), "1");
  }
}

/* The Reject(3) or (j) that answers message seq of session s. */
fixc::Msg wait_reject(int s, const char *type, int seq) {
  fixc::Msg got;
  C().wait_until([&] {
    for (const fixc::Msg &m : C().inbox()[s])
      if (m.type() == type && m.get(45) == std::to_string(seq)) {
        got = m;
        return true;
      }
    return false;
  }, kWait);
  return got;
}

void malformed_messages_rejected(void **) {
  struct Case {
    FIX::Message m;
    const char *type; /* "3" or "j" */
    int reason_tag;   /* 373 or 380 */
    const char *reason, *ref_tag;
  } cases[] = {
      {fixc::new_order("M-1", "1001", "", "1", "10", "2", "1"), "3", 373, "1", "55"},
      {fixc::new_order("M-2", "1001", "AAPL", "9", "10", "2", "1"), "3", 373, "5", "54"},
      {fixc::new_order("M-3", "1001", "AAPL", "1", "ten", "2", "1"), "3", 373, "6", "38"},
      {fixc::new_order("M-4", "1001", "AAPL", "1", "10", "2", "1.2.3"), "3", 373, "6", "44"},
      {fixc::new_order("", "1001", "AAPL", "1", "10", "2", "1"), "3", 373, "1", "11"},
      {fixc::new_order("M-6", "1001", "AAPL", "1", "10", "2", ""), "j", 380, "5", ""},
      {fixc::new_order("M-7", "1001", "AAPL", "1", "10", "Q", "1"), "3", 373, "5", "40"},
  };
  /* ClOrdID twice (FieldMap keeps both when not told to overwrite). */
  FIX::Message twice = fixc::new_order("M-9", "1001", "AAPL", "1", "10", "2", "1");
  twice.setField(FIX::FieldBase(11, "M-9b"), false);
  std::vector<int> seqs;
  for (Case &c : cases)
    seqs.push_back(C().send(0, c.m));
  int seq_twice = C().send(0, twice);
  /* A message type the gateway does not take: QuickFIX's own (j), 3. */
  FIX::Message replace;
  replace.getHeader().setField(FIX::FIELD::MsgType, "G");
  replace.setField(11, "M-8");
  int seq_g = C().send(0, replace);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_true(seqs[i] > 0);
    fixc::Msg r = wait_reject(0, cases[i].type, seqs[i]);
    if (r.get(cases[i].reason_tag) != cases[i].reason)
      fail_msg("case %zu: %s %d=%s, expected %s", i, r.type().c_str(), cases[i].reason_tag,
               r.get(cases[i].reason_tag).c_str(), cases[i].reason);
    if (cases[i].type[0] == '3')
      assert_string_equal(r.get(371).c_str(), cases[i].ref_tag);
    assert_string_equal(r.get(372).c_str(), "D");
  }
  fixc::Msg t = wait_reject(0, "3", seq_twice);
  assert_string_equal(t.get(373).c_str(), "13");
  assert_string_equal(t.get(371).c_str(), "11");
  fixc::Msg g = wait_reject(0, "j", seq_g);
  assert_string_equal(g.get(380).c_str(), "3");
  /* None of them became an order; the session still works. */
  auto seen = venue_orders();
  for (const char *id : {"M-1", "M-2", "M-3", "M-4", "M-6", "M-7", "M-9", "M-9b"})
    assert_int_equal(seen.count(id), 0);
  C().send(0, fixc::new_order("M-ok", "1001", "AAPL", "1", "10", "2", "191"));
  auto r = wait_reports(0, "M-ok", [](const std::vector<fixc::Msg> &v) { return v.size() >= 2; });
  assert_int_equal(r.size(), 2);
}

/* Kill -9 mid-stream, restart on the same directory, resend what was not
 * acknowledged: every order ends with its one outcome and the venue took
 * each exactly once. */
void restart_with_resends(void **) {
  const int n = 1200;
  std::vector<std::string> ids;
  for (int i = 0; i < n; i++) {
    ids.push_back("K-" + std::to_string(i));
    C().send(i % 4, fixc::new_order(ids.back(), std::to_string(2000 + i % 4), "AAPL", "1", "10", "2", "191"));
    if (i == n / 4) {
      /* Some are answered by now, most are on their way. */
      C().wait_until([&] { return !C().find(0, 11, "K-0").empty(); }, kWait);
    }
    if (i == n / 2)
      rig->gw.stop(SIGKILL, kWait);
  }
  /* The client's view: which orders it knows to be filled. */
  std::set<std::string> answered;
  {
    std::lock_guard<std::mutex> l(C().mutex());
    for (int s = 0; s < 4; s++)
      for (const fixc::Msg &m : C().inbox()[s])
        if (m.type() == "8" && m.get(11).rfind("K-", 0) == 0 && m.get(39) == "2")
          answered.insert(m.get(11));
  }
  assert_true(C().wait_until(all_logged_off, kWait));
  assert_true(start_gateway());
  assert_true(C().wait_until([] { return C().all_logged_on(); }, kWait));
  int resent = 0;
  for (int i = 0; i < n; i++)
    if (!answered.count(ids[i])) {
      C().send(i % 4, fixc::new_order(ids[i], std::to_string(2000 + i % 4), "AAPL", "1", "10", "2", "191", true));
      resent++;
    }
  fprintf(stderr, "restart: %zu of %d answered before the kill, %d resent; %s", answered.size(), n,
          resent, rig->gw.banner.c_str());
  assert_true(resent > 0);
  /* Every order: a report saying filled (a fill, or the stored outcome). */
  bool all = C().wait_until([&] {
    for (int i = 0; i < n; i++) {
      bool filled = false;
      for (const fixc::Msg &m : C().inbox()[i % 4])
        if (m.get(11) == ids[i] && m.get(39) == "2")
          filled = true;
      if (!filled)
        return false;
    }
    return true;
  }, kWait * 3);
  assert_true(all);
  /* One venue order id per ClOrdID in every report it got. */
  {
    std::lock_guard<std::mutex> l(C().mutex());
    std::map<std::string, std::string> oid;
    for (int s = 0; s < 4; s++)
      for (const fixc::Msg &m : C().inbox()[s])
        if (m.type() == "8" && m.get(11).rfind("K-", 0) == 0 && m.get(39) != "A") {
          auto it = oid.emplace(m.get(11), m.get(37)).first;
          if (it->second != m.get(37))
            fail_msg("%s: OrderID %s and %s", m.get(11).c_str(), it->second.c_str(), m.get(37).c_str());
        }
  }
  auto seen = venue_orders();
  for (const std::string &id : ids)
    if (seen[id] != 1)
      fail_msg("the venue took %s %d times", id.c_str(), seen[id]);
}

/* The gateway dies right after the venue took an order, before its
 * outcome is journaled: recovery finds it in doubt, asks the venue, and
 * does not send it again; the client's resend gets the venue's fills. */
void in_doubt_order_not_sent_twice(void **) {
  rig->gw.stop(SIGKILL, kWait);
  assert_true(C().wait_until(all_logged_off, kWait));
  assert_true(start_gateway({"--die-after-sends", "1"}));
  assert_true(C().wait_until([] { return C().all_logged_on(); }, kWait));
  C().send(2, fixc::new_order("Q-1", "1005", "AAPL", "1", "250", "2", "191"));
  int st = rig->gw.wait_exit(kWait);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 9);
  assert_true(C().wait_until(all_logged_off, kWait));
  assert_int_equal(C().find(2, 11, "Q-1").size(), 0); /* no answer before the crash */
  assert_int_equal(venue_orders()["Q-1"], 1);         /* but the venue has it */
  assert_true(start_gateway());
  assert_non_null(strstr(rig->gw.banner.c_str(), "1 in doubt and sent"));
  assert_true(C().wait_until([] { return C().all_logged_on(); }, kWait));
  C().send(2, fixc::new_order("Q-1", "1005", "AAPL", "1", "250", "2", "191", true));
  auto r = wait_reports(2, "Q-1", [](const std::vector<fixc::Msg> &v) {
    for (const fixc::Msg &m : v)
      if (m.get(39) == "2")
        return true;
    return false;
  });
  fixc::Msg last;
  for (const fixc::Msg &m : r)
    if (m.get(39) == "2")
      last = m;
  assert_string_equal(last.get(39).c_str(), "2");
  assert_string_equal(last.get(14).c_str(), "250");
  assert_string_equal(last.get(6).c_str(), "190.008");
  assert_int_equal(venue_orders()["Q-1"], 1);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ack_then_fills),
      cmocka_unit_test(rejects_with_reasons),
      cmocka_unit_test(duplicate_gets_stored_outcome),
      cmocka_unit_test(cancel_and_cancel_reject),
      cmocka_unit_test(malformed_messages_rejected),
      cmocka_unit_test(restart_with_resends),
      cmocka_unit_test(in_doubt_order_not_sent_twice),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
