/*
 * fix_client.h: a QuickFIX SocketInitiator client of the FIX gateway, and
 * the gateway as a child process -- for test/test_fix_gateway.cc and
 * bench/fix_roundtrip.cc.  Header-only C++14.
 *
 * Client: sessions CLIENT1..CLIENTn -> GATEWAY on 127.0.0.1:port, in one
 * SocketInitiator (its own thread).  Every application message and every
 * session Reject(3) received is kept per session; the caller waits for
 * conditions on them with a bounded timeout (wait_until).  An optional
 * hook sees each message as it arrives, on the initiator's thread.
 *
 * GatewayProcess: fork+exec of the fix_gateway binary, reading its stdout
 * until it says "ready" (bounded), SIGKILL or SIGTERM to stop it.
 */
#ifndef FIX_CLIENT_H
#define FIX_CLIENT_H

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <quickfix/Application.h>
#include <quickfix/MessageStore.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/SocketInitiator.h>

namespace fixc {

/* A received message, flattened: tag -> value (header and body). */
struct Msg {
  std::map<int, std::string> f;
  bool has(int tag) const { return f.count(tag) != 0; }
  std::string get(int tag) const {
    auto i = f.find(tag);
    return i == f.end() ? std::string() : i->second;
  }
  std::string type() const { return get(35); }
};

inline Msg flatten(const FIX::Message &m) {
  Msg out;
  for (FIX::FieldMap::const_iterator i = m.getHeader().begin(); i != m.getHeader().end(); ++i)
    out.f[i->getTag()] = i->getString();
  for (FIX::FieldMap::const_iterator i = m.begin(); i != m.end(); ++i)
    out.f[i->getTag()] = i->getString();
  return out;
}

class Client : public FIX::Application {
 public:
  /* Called on the initiator's thread for every kept message. */
  std::function<void(int session, const Msg &)> hook;

  Client(int port, int sessions) {
    FIX::Dictionary d;
    d.setString("ConnectionType", "initiator");
    d.setString("BeginString", "FIX.4.4");
    d.setString("TargetCompID", "GATEWAY");
    d.setString("SocketConnectHost", "127.0.0.1");
    d.setInt("SocketConnectPort", port);
    d.setString("StartTime", "00:00:00");
    d.setString("EndTime", "00:00:00");
    d.setInt("HeartBtInt", 30);
    d.setInt("ReconnectInterval", 1);
    d.setString("ResetOnLogon", "Y");
    d.setString("ResetOnLogout", "Y");
    d.setString("ResetOnDisconnect", "Y");
    d.setString("UseDataDictionary", "N");
    d.setString("SocketNodelay", "Y");
    settings_.set(d);
    for (int i = 1; i <= sessions; i++) {
      FIX::SessionID id("FIX.4.4", "CLIENT" + std::to_string(i), "GATEWAY");
      FIX::Dictionary sd;
      sd.setString("SenderCompID", "CLIENT" + std::to_string(i));
      settings_.set(id, sd);
      ids_.push_back(id);
    }
    inbox_.resize(ids_.size());
    last_seq_.resize(ids_.size());
    init_.reset(new FIX::SocketInitiator(*this, store_, settings_));
    init_->start();
  }
  ~Client() override { init_->stop(true); }

  const FIX::SessionID &id(int s) const { return ids_[s]; }
  int sessions() const { return (int)ids_.size(); }

  /* Sends on session s (0-based); the message's MsgSeqNum, 0 if not sent. */
  int send(int s, FIX::Message m) {
    try {
      if (!FIX::Session::sendToTarget(m, ids_[s]))
        return 0;
    } catch (const FIX::Exception &) {
      return 0;
    }
    std::lock_guard<std::mutex> l(mu_);
    return last_seq_[s];
  }

  /* Waits up to ms for pred() (called with the lock held, on the inbox). */
  bool wait_until(const std::function<bool()> &pred, int ms) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::milliseconds(ms), pred);
  }

  bool all_logged_on() const {
    for (const bool &b : online_)
      if (!b)
        return false;
    return online_.size() == ids_.size();
  }
  bool logged_on(int s) const { return s < (int)online_.size() && online_[s]; }

  /* Under the lock (inside wait_until's predicate), or after waiting. */
  std::vector<std::vector<Msg>> &inbox() { return inbox_; }
  std::mutex &mutex() { return mu_; }

  /* Messages of session s with tag == value, in arrival order. */
  std::vector<Msg> find(int s, int tag, const std::string &value) {
    std::vector<Msg> out;
    for (const Msg &m : inbox_[s])
      if (m.get(tag) == value)
        out.push_back(m);
    return out;
  }

  void onCreate(const FIX::SessionID &) override {}
  void onLogon(const FIX::SessionID &s) override { set_online(s, true); }
  void onLogout(const FIX::SessionID &s) override { set_online(s, false); }
  void toAdmin(FIX::Message &, const FIX::SessionID &) override {}
  void toApp(FIX::Message &m, const FIX::SessionID &s) throw(FIX::DoNotSend) override {
    std::lock_guard<std::mutex> l(mu_);
    last_seq_[index(s)] = std::stoi(m.getHeader().getField(FIX::FIELD::MsgSeqNum));
  }
  void fromAdmin(const FIX::Message &m, const FIX::SessionID &s) throw(
      FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
      FIX::RejectLogon) override {
    if (m.getHeader().getField(FIX::FIELD::MsgType) == "3")
      keep(m, s);
  }
  void fromApp(const FIX::Message &m, const FIX::SessionID &s) throw(
      FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
      FIX::UnsupportedMessageType) override {
    keep(m, s);
  }

 private:
  int index(const FIX::SessionID &s) const {
    for (size_t i = 0; i < ids_.size(); i++)
      if (ids_[i] == s)
        return (int)i;
    return 0;
  }
  void keep(const FIX::Message &m, const FIX::SessionID &s) {
    Msg x = flatten(m);
    int i = index(s);
    if (hook)
      hook(i, x);
    {
      std::lock_guard<std::mutex> l(mu_);
      inbox_[i].push_back(std::move(x));
    }
    cv_.notify_all();
  }
  void set_online(const FIX::SessionID &s, bool on) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (online_.size() != ids_.size())
        online_.assign(ids_.size(), false);
      online_[index(s)] = on;
    }
    cv_.notify_all();
  }

  FIX::SessionSettings settings_;
  FIX::MemoryStoreFactory store_;
  std::vector<FIX::SessionID> ids_;
  std::unique_ptr<FIX::SocketInitiator> init_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::vector<Msg>> inbox_;
  std::vector<int> last_seq_;
  std::vector<bool> online_;
};

/* A NewOrderSingle with the given field values (as strings, never a
 * double); an empty value leaves the field out. */
inline FIX::Message new_order(const std::string &clordid, const std::string &account,
                              const std::string &symbol, const std::string &side,
                              const std::string &qty, const std::string &ord_type,
                              const std::string &price, bool poss_resend = false) {
  FIX::Message m;
  m.getHeader().setField(FIX::FIELD::MsgType, "D");
  if (poss_resend)
    m.getHeader().setField(97, "Y");
  const std::pair<int, std::string> f[] = {
      {11, clordid}, {1, account}, {55, symbol}, {54, side}, {38, qty},
      {40, ord_type}, {44, price}, {59, "0"}, {60, "20261203-21:00:00.000"}};
  for (const auto &x : f)
    if (!x.second.empty())
      m.setField(x.first, x.second);
  return m;
}

inline FIX::Message cancel(const std::string &clordid, const std::string &orig,
                           const std::string &account, const std::string &symbol,
                           const std::string &side) {
  FIX::Message m;
  m.getHeader().setField(FIX::FIELD::MsgType, "F");
  m.setField(11, clordid);
  m.setField(41, orig);
  m.setField(1, account);
  m.setField(55, symbol);
  m.setField(54, side);
  m.setField(60, "20261203-21:00:00.000");
  return m;
}

/* A port at or below 32767 that 127.0.0.1 can bind now (QuickFIX's
 * acceptor misbehaved above it), or 0. */
inline int free_port(int from) {
  for (int p = from; p <= 32767; p++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)p);
    a.sin_addr.s_addr = htonl(INADDR_ANY); /* the acceptor binds all */
    int ok = bind(fd, (sockaddr *)&a, sizeof a) == 0;
    close(fd);
    if (ok)
      return p;
  }
  return 0;
}

class GatewayProcess {
 public:
  /* Starts bin --port port --dir dir --config cfg [extra...] and waits up
   * to ms for its "ready" line.  Returns true when it is ready. */
  bool start(const std::string &bin, const std::string &cfg, int port,
             const std::string &dir, const std::vector<std::string> &extra, int ms) {
    int p[2];
    if (pipe(p) != 0)
      return false;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(p[1], 1);
      close(p[0]);
      close(p[1]);
      std::vector<std::string> a = {bin, "--port", std::to_string(port), "--dir", dir, "--config", cfg};
      a.insert(a.end(), extra.begin(), extra.end());
      std::vector<char *> argv;
      for (std::string &s : a)
        argv.push_back(&s[0]);
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(p[1]);
    out_ = p[0];
    std::string got;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (got.find("ready") == std::string::npos) {
      int left = (int)std::chrono::duration_cast<std::chrono::milliseconds>(
                     end - std::chrono::steady_clock::now()).count();
      pollfd pf = {out_, POLLIN, 0};
      if (left <= 0 || poll(&pf, 1, left) <= 0)
        return false;
      char b[256];
      ssize_t n = read(out_, b, sizeof b);
      if (n <= 0)
        return false;
      got.append(b, (size_t)n);
    }
    banner = got;
    return true;
  }

  /* Waits up to ms for the child to exit on its own; its wait status, or
   * -1 if it is still running (or was never started). */
  int wait_exit(int ms) {
    int st = 0;
    for (int waited = 0; pid_ > 0; waited += 10) {
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        if (out_ >= 0)
          close(out_);
        out_ = -1;
        return st;
      }
      if (waited >= ms)
        break;
      usleep(10000);
    }
    return -1;
  }

  /* Sends sig and reaps the child (bounded: SIGKILL after ms). */
  int stop(int sig, int ms) {
    if (pid_ <= 0)
      return -1;
    kill(pid_, sig);
    int st = 0;
    for (int waited = 0; waitpid(pid_, &st, WNOHANG) == 0; waited += 10) {
      if (waited >= ms)
        kill(pid_, SIGKILL);
      usleep(10000);
    }
    pid_ = -1;
    if (out_ >= 0)
      close(out_);
    out_ = -1;
    return st;
  }
  ~GatewayProcess() {
    if (pid_ > 0)
      stop(SIGKILL, 0);
  }

  std::string banner;

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

}  // namespace fixc

#endif /* FIX_CLIENT_H */
