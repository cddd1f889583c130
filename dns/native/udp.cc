// The native UDP engine of the DNS plugin: one socket per listen address,
// read on a thread of its own with recvmmsg, the precomputed answers of
// dns/fastpath.ts replayed there and sent back with sendmmsg. Everything
// else (a query not in the table, a stale entry, anything unusual) goes to
// the JavaScript server through a thread-safe function, exactly as received,
// and its answer comes back through send(). See dns/native.ts for why.
//
// The table is filled only from JavaScript (store), with answers the zone
// produced; an entry made at an older zone generation is never replayed
// here. Every read of a packet is bounds-checked: any datagram either gets a
// table answer, goes to JavaScript, or is counted as dropped.

#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

constexpr int kBatch = 32;
constexpr size_t kRecvSize = 65536;
constexpr size_t kHeader = 12;
// The queue to JavaScript is bounded in count (start's queueSize) and in bytes: large datagrams
// that miss cannot pile up more than this.
constexpr size_t kMaxQueuedBytes = 8 * 1024 * 1024;
// Latency buckets in seconds, the same as dns/metrics.ts.
constexpr double kBuckets[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 2.5};
constexpr int kBucketCount = sizeof(kBuckets) / sizeof(kBuckets[0]);

struct Entry {
  std::string bytes;
  uint32_t generation;
  uint8_t rcode;
};

// Bytes of misses waiting for JavaScript, shared with each queued miss (which may outlive its engine).
using QueuedBytes = std::shared_ptr<std::atomic<size_t>>;

struct Miss {
  std::vector<uint8_t> data;
  sockaddr_in from;
  QueuedBytes queued;
};

struct Stats {
  std::unordered_map<uint32_t, uint64_t> counts;  // qtype * 32 + rcode
  uint64_t buckets[kBucketCount + 1] = {};
  double sum = 0;
  uint64_t count = 0;
};

struct Engine {
  napi_env env = nullptr;
  bool hooked = false;
  int fd = -1;
  int wake = -1;
  std::thread thread;
  bool started = false;
  bool closed = false;
  std::atomic<bool> stopping{false};
  std::atomic<uint32_t> generation{0};
  std::shared_mutex tableMu;
  std::unordered_map<std::string, Entry> table;
  size_t maxEntries = 50000;
  napi_threadsafe_function tsfn = nullptr;
  std::mutex statsMu;
  Stats stats;
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> overflow{0};
  QueuedBytes queued = std::make_shared<std::atomic<size_t>>(0);
};

inline uint8_t lower(uint8_t c) { return c >= 0x41 && c <= 0x5a ? c | 0x20 : c; }

struct Key {
  std::string key;  // lowercased wire name, qtype, qclass, edns flag
  size_t nameEnd;
  uint16_t qtype;
  size_t limit;
};

// The key of a plain query (one question, no records but an optional EDNS 0
// OPT), as dns/fastpath.ts fastKey() reads it; false when the packet needs
// the full decoder.
bool parseKey(const uint8_t* buf, size_t len, Key& k) {
  if (len < kHeader + 5) return false;
  if ((buf[2] & 0xf8) != 0) return false;
  if (buf[4] != 0 || buf[5] != 1 || buf[6] != 0 || buf[7] != 0 || buf[8] != 0 || buf[9] != 0 || buf[10] != 0) return false;
  const uint8_t ar = buf[11];
  if (ar > 1) return false;
  size_t off = kHeader;
  k.key.clear();
  for (;;) {
    const uint8_t l = buf[off];
    if (l == 0) break;
    if (l > 63 || off + l + 1 >= len || off + l + 1 - kHeader > 254) return false;
    k.key.push_back(static_cast<char>(l));
    for (size_t i = off + 1; i <= off + l; i++) k.key.push_back(static_cast<char>(lower(buf[i])));
    off += l + 1;
  }
  k.key.push_back('\0');
  k.nameEnd = off + 1;
  if (k.nameEnd + 4 > len) return false;
  k.qtype = static_cast<uint16_t>((buf[k.nameEnd] << 8) | buf[k.nameEnd + 1]);
  size_t p = k.nameEnd + 4;
  k.limit = 512;
  uint8_t edns = 0;
  if (ar == 1) {
    if (p + 11 > len || buf[p] != 0 || buf[p + 1] != 0 || buf[p + 2] != 41) return false;
    if (buf[p + 5] != 0 || buf[p + 6] != 0) return false;
    const size_t payload = (buf[p + 3] << 8) | buf[p + 4];
    const size_t rdlen = (buf[p + 9] << 8) | buf[p + 10];
    if (p + 11 + rdlen != len) return false;
    k.limit = payload > 512 ? payload : 512;
    edns = (buf[p + 7] & 0x80) ? 2 : 1;
    p = len;
  }
  if (p != len) return false;
  k.key.append(reinterpret_cast<const char*>(buf + k.nameEnd), 4);
  k.key.push_back(static_cast<char>(edns));
  return true;
}

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void callJs(napi_env env, napi_value fn, void*, void* data) {
  Miss* m = static_cast<Miss*>(data);
  if (env != nullptr && fn != nullptr) {
    napi_value args[3], global, ignored;
    void* copy;
    char addr[INET_ADDRSTRLEN] = "";
    inet_ntop(AF_INET, &m->from.sin_addr, addr, sizeof addr);
    if (napi_create_buffer_copy(env, m->data.size(), m->data.data(), &copy, &args[0]) == napi_ok &&
        napi_create_string_utf8(env, addr, NAPI_AUTO_LENGTH, &args[1]) == napi_ok &&
        napi_create_uint32(env, ntohs(m->from.sin_port), &args[2]) == napi_ok && napi_get_global(env, &global) == napi_ok) {
      napi_call_function(env, global, fn, 3, args, &ignored);
    }
    // The JavaScript side catches its own errors; should one escape, it must not end the process.
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
    }
  }
  m->queued->fetch_sub(m->data.size(), std::memory_order_relaxed);
  delete m;
}

void run(Engine* e) {
  std::vector<std::vector<uint8_t>> in(kBatch, std::vector<uint8_t>(kRecvSize));
  std::vector<std::string> out(kBatch);
  mmsghdr rmsg[kBatch], smsg[kBatch];
  iovec riov[kBatch], siov[kBatch];
  sockaddr_in from[kBatch];
  uint32_t statKey[kBatch];
  Key k;
  k.key.reserve(300);
  pollfd pfd[2] = {{e->fd, POLLIN, 0}, {e->wake, POLLIN, 0}};
  while (!e->stopping.load(std::memory_order_relaxed)) {
    int r = poll(pfd, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pfd[1].revents) break;
    // Drain what is queued, a bounded number of batches per wake-up.
    for (int round = 0; round < 16 && !e->stopping.load(std::memory_order_relaxed); round++) {
      for (int i = 0; i < kBatch; i++) {
        riov[i] = {in[i].data(), kRecvSize};
        memset(&rmsg[i].msg_hdr, 0, sizeof(msghdr));
        rmsg[i].msg_hdr.msg_iov = &riov[i];
        rmsg[i].msg_hdr.msg_iovlen = 1;
        rmsg[i].msg_hdr.msg_name = &from[i];
        rmsg[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      }
      int n = recvmmsg(e->fd, rmsg, kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          // An error queued on the socket (an ICMP report): it is consumed; go on.
          continue;
        }
        break;
      }
      const double t0 = now();
      int nsend = 0;
      {
        std::shared_lock<std::shared_mutex> lock(e->tableMu);
        const uint32_t gen = e->generation.load(std::memory_order_acquire);
        for (int i = 0; i < n; i++) {
          const uint8_t* q = in[i].data();
          const size_t len = rmsg[i].msg_len;
          // Never answered: source port 0 (no reply can reach it), too short, QR=1 (no reflection loops), cut short.
          if (rmsg[i].msg_hdr.msg_namelen < sizeof(sockaddr_in) || from[i].sin_family != AF_INET || from[i].sin_port == 0 ||
              len < kHeader || (q[2] & 0x80) || (rmsg[i].msg_hdr.msg_flags & MSG_TRUNC)) {
            e->dropped.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          bool hit = false;
          if (parseKey(q, len, k)) {
            auto it = e->table.find(k.key);
            if (it != e->table.end() && it->second.generation == gen && it->second.bytes.size() <= k.limit) {
              std::string& o = out[nsend];
              o = it->second.bytes;
              o[0] = static_cast<char>(q[0]);
              o[1] = static_cast<char>(q[1]);
              o[2] = static_cast<char>((o[2] & 0xfe) | (q[2] & 0x01));
              o[3] = static_cast<char>((o[3] & 0xef) | (q[3] & 0x10));
              memcpy(&o[kHeader], q + kHeader, k.nameEnd - kHeader);
              siov[nsend] = {o.data(), o.size()};
              memset(&smsg[nsend].msg_hdr, 0, sizeof(msghdr));
              smsg[nsend].msg_hdr.msg_iov = &siov[nsend];
              smsg[nsend].msg_hdr.msg_iovlen = 1;
              smsg[nsend].msg_hdr.msg_name = &from[i];
              smsg[nsend].msg_hdr.msg_namelen = sizeof(sockaddr_in);
              statKey[nsend] = static_cast<uint32_t>(k.qtype) * 32 + (it->second.rcode & 31);
              nsend++;
              hit = true;
            }
          }
          if (hit) continue;
          e->misses.fetch_add(1, std::memory_order_relaxed);
          if (e->queued->load(std::memory_order_relaxed) + len > kMaxQueuedBytes) {
            e->overflow.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          e->queued->fetch_add(len, std::memory_order_relaxed);
          Miss* m = new Miss{std::vector<uint8_t>(q, q + len), from[i], e->queued};
          napi_status st = napi_call_threadsafe_function(e->tsfn, m, napi_tsfn_nonblocking);
          if (st != napi_ok) {
            e->queued->fetch_sub(len, std::memory_order_relaxed);
            delete m;
            e->overflow.fetch_add(1, std::memory_order_relaxed);
          }
        }
      }
      // Counted before the replies go, so that a client holding its answer finds it counted
      // (the JavaScript path, too, counts a reply when it hands it to the socket).
      if (nsend > 0) {
        const double dt = now() - t0;
        int b = 0;
        while (b < kBucketCount && dt > kBuckets[b]) b++;
        e->hits.fetch_add(nsend, std::memory_order_relaxed);
        std::lock_guard<std::mutex> lock(e->statsMu);
        for (int i = 0; i < nsend; i++) e->stats.counts[statKey[i]]++;
        e->stats.buckets[b] += nsend;
        e->stats.sum += dt * nsend;
        e->stats.count += nsend;
      }
      int sent = 0;
      while (sent < nsend) {
        int s = sendmmsg(e->fd, smsg + sent, nsend - sent, MSG_DONTWAIT);
        if (s > 0) {
          sent += s;
        } else if (s < 0 && errno == EINTR) {
          continue;
        } else {
          sent++;  // this reply cannot go (no buffer space, a bad address): skip it, as a lost datagram
        }
      }
      if (n < kBatch) break;
    }
  }
  napi_release_threadsafe_function(e->tsfn, napi_tsfn_release);
}

void shutdown(Engine* e) {
  if (e->closed) return;
  e->closed = true;
  e->stopping.store(true);
  if (e->started) {
    uint64_t one = 1;
    ssize_t w = write(e->wake, &one, sizeof one);
    (void)w;
    e->thread.join();
  }
  if (e->fd >= 0) close(e->fd);
  if (e->wake >= 0) close(e->wake);
  e->fd = e->wake = -1;
}

// Engines still open when the environment goes away are stopped before its
// thread-safe functions are torn down (hooks run in reverse order of adding,
// and each engine adds its hook after creating its function).
void cleanupHook(void* data) {
  Engine* e = static_cast<Engine*>(data);
  e->hooked = false;
  shutdown(e);
}

void unhook(Engine* e) {
  if (!e->hooked) return;
  e->hooked = false;
  napi_remove_env_cleanup_hook(e->env, cleanupHook, e);
}

void finalize(napi_env, void* data, void*) {
  Engine* e = static_cast<Engine*>(data);
  unhook(e);
  shutdown(e);
  delete e;
}

// ---- argument helpers ----

napi_value fail(napi_env env, const char* code, const char* msg) {
  napi_throw_error(env, code, msg);
  return nullptr;
}

napi_value undefinedValue(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

bool getArgs(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < want) {
    napi_throw_type_error(env, nullptr, "kith udp: missing arguments");
    return false;
  }
  return true;
}

Engine* getEngine(napi_env env, napi_value v) {
  void* data = nullptr;
  if (napi_get_value_external(env, v, &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, nullptr, "kith udp: not an engine");
    return nullptr;
  }
  Engine* e = static_cast<Engine*>(data);
  if (e->closed) {
    napi_throw_error(env, "ERR_SOCKET_DGRAM_NOT_RUNNING", "kith udp: engine closed");
    return nullptr;
  }
  return e;
}

bool getAddress(napi_env env, napi_value host, napi_value port, sockaddr_in& sa) {
  char buf[64];
  size_t n = 0;
  uint32_t p = 0;
  if (napi_get_value_string_utf8(env, host, buf, sizeof buf, &n) != napi_ok || napi_get_value_uint32(env, port, &p) != napi_ok || p > 65535) {
    napi_throw_type_error(env, nullptr, "kith udp: bad address");
    return false;
  }
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(p));
  if (inet_pton(AF_INET, buf, &sa.sin_addr) != 1) {
    napi_throw_type_error(env, nullptr, "kith udp: not an IPv4 address");
    return false;
  }
  return true;
}

napi_value throwErrno(napi_env env, int err, const char* syscall) {
  const char* code = err == EADDRINUSE ? "EADDRINUSE" : err == EACCES ? "EACCES" : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : "EIO";
  std::string msg = std::string(syscall) + " " + code + ": " + strerror(err);
  return fail(env, code, msg.c_str());
}

// open(host, port, bufferBytes): a bound, non-blocking UDP socket.
napi_value Open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!getArgs(env, info, 3, argv)) return nullptr;
  sockaddr_in sa;
  if (!getAddress(env, argv[0], argv[1], sa)) return nullptr;
  uint32_t bufBytes = 0;
  napi_get_value_uint32(env, argv[2], &bufBytes);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throwErrno(env, errno, "socket");
  if (bufBytes > 0) {
    int b = static_cast<int>(bufBytes);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &b, sizeof b);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &b, sizeof b);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int err = errno;
    close(fd);
    return throwErrno(env, err, "bind");
  }
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    int err = errno;
    close(fd);
    return throwErrno(env, err, "eventfd");
  }
  Engine* e = new Engine();
  e->fd = fd;
  e->wake = wake;
  napi_value ext;
  if (napi_create_external(env, e, finalize, nullptr, &ext) != napi_ok) {
    shutdown(e);
    delete e;
    return fail(env, nullptr, "kith udp: cannot wrap the engine");
  }
  return ext;
}

// start(engine, onMiss(query: Buffer, address: string, port: number), queueSize)
napi_value Start(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!getArgs(env, info, 3, argv)) return nullptr;
  Engine* e = getEngine(env, argv[0]);
  if (!e) return nullptr;
  if (e->started) return fail(env, nullptr, "kith udp: already started");
  uint32_t queue = 0;
  napi_get_value_uint32(env, argv[2], &queue);
  napi_value name;
  napi_create_string_utf8(env, "kith-udp", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], nullptr, name, queue, 1, nullptr, nullptr, nullptr, callJs, &e->tsfn) != napi_ok) {
    return fail(env, nullptr, "kith udp: cannot create the callback");
  }
  // The socket does not keep the process alive by itself; the agent's stop closes it.
  napi_unref_threadsafe_function(env, e->tsfn);
  try {
    e->thread = std::thread(run, e);
  } catch (...) {
    napi_release_threadsafe_function(e->tsfn, napi_tsfn_abort);
    return fail(env, nullptr, "kith udp: cannot start the thread");
  }
  e->started = true;
  e->env = env;
  if (napi_add_env_cleanup_hook(env, cleanupHook, e) == napi_ok) e->hooked = true;
  return undefinedValue(env);
}

// send(engine, bytes, address, port): one datagram; false when the kernel refused it.
napi_value Send(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!getArgs(env, info, 4, argv)) return nullptr;
  Engine* e = getEngine(env, argv[0]);
  if (!e) return nullptr;
  void* data;
  size_t len;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) return fail(env, nullptr, "kith udp: bytes must be a Buffer");
  sockaddr_in sa;
  if (!getAddress(env, argv[2], argv[3], sa)) return nullptr;
  ssize_t s;
  do {
    s = sendto(e->fd, data, len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  } while (s < 0 && errno == EINTR);
  napi_value ok;
  napi_get_boolean(env, s >= 0, &ok);
  return ok;
}

// store(engine, query, response, generation, rcode): the response replays for queries with this query's key.
napi_value Store(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!getArgs(env, info, 5, argv)) return nullptr;
  Engine* e = getEngine(env, argv[0]);
  if (!e) return nullptr;
  void *qd, *rd;
  size_t ql, rl;
  uint32_t gen = 0, rcode = 0;
  if (napi_get_buffer_info(env, argv[1], &qd, &ql) != napi_ok || napi_get_buffer_info(env, argv[2], &rd, &rl) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &gen) != napi_ok || napi_get_value_uint32(env, argv[4], &rcode) != napi_ok) {
    return fail(env, nullptr, "kith udp: bad store arguments");
  }
  Key k;
  const uint8_t* q = static_cast<const uint8_t*>(qd);
  const uint8_t* r = static_cast<const uint8_t*>(rd);
  napi_value stored;
  // Only answers whose question sits where the query's does (the same name but for case), never truncated ones.
  bool ok = parseKey(q, ql, k) && rl >= k.nameEnd + 4 && rl <= 65535 && !(r[2] & 0x02);
  for (size_t i = kHeader; ok && i < k.nameEnd; i++) ok = lower(r[i]) == lower(q[i]);
  if (ok) {
    std::unique_lock<std::shared_mutex> lock(e->tableMu);
    if (e->table.size() >= e->maxEntries && e->table.find(k.key) == e->table.end()) e->table.clear();
    e->table[k.key] = Entry{std::string(static_cast<const char*>(rd), rl), gen, static_cast<uint8_t>(rcode)};
  }
  napi_get_boolean(env, ok, &stored);
  return stored;
}

// setGeneration(engine, generation): entries of any other generation are no longer replayed.
napi_value SetGeneration(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!getArgs(env, info, 2, argv)) return nullptr;
  Engine* e = getEngine(env, argv[0]);
  if (!e) return nullptr;
  uint32_t gen = 0;
  napi_get_value_uint32(env, argv[1], &gen);
  e->generation.store(gen, std::memory_order_release);
  return undefinedValue(env);
}

napi_value setNumber(napi_env env, napi_value obj, const char* key, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, key, n);
  return obj;
}

// stats(engine): cumulative counts of what the thread answered and dropped.
napi_value GetStats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!getArgs(env, info, 1, argv)) return nullptr;
  Engine* e = getEngine(env, argv[0]);
  if (!e) return nullptr;
  napi_value obj, counts, buckets;
  napi_create_object(env, &obj);
  Stats copy;
  {
    std::lock_guard<std::mutex> lock(e->statsMu);
    copy = e->stats;
  }
  napi_create_array(env, &counts);
  uint32_t i = 0;
  for (const auto& [key, n] : copy.counts) {
    napi_value pair, a, b;
    napi_create_array_with_length(env, 2, &pair);
    napi_create_uint32(env, key, &a);
    napi_create_double(env, static_cast<double>(n), &b);
    napi_set_element(env, pair, 0, a);
    napi_set_element(env, pair, 1, b);
    napi_set_element(env, counts, i++, pair);
  }
  napi_create_array_with_length(env, kBucketCount + 1, &buckets);
  for (int b = 0; b <= kBucketCount; b++) {
    napi_value v;
    napi_create_double(env, static_cast<double>(copy.buckets[b]), &v);
    napi_set_element(env, buckets, b, v);
  }
  napi_set_named_property(env, obj, "counts", counts);
  napi_set_named_property(env, obj, "buckets", buckets);
  setNumber(env, obj, "sum", copy.sum);
  setNumber(env, obj, "count", static_cast<double>(copy.count));
  setNumber(env, obj, "hits", static_cast<double>(e->hits.load()));
  setNumber(env, obj, "misses", static_cast<double>(e->misses.load()));
  setNumber(env, obj, "dropped", static_cast<double>(e->dropped.load()));
  setNumber(env, obj, "overflow", static_cast<double>(e->overflow.load()));
  {
    std::shared_lock<std::shared_mutex> lock(e->tableMu);
    setNumber(env, obj, "entries", static_cast<double>(e->table.size()));
  }
  return obj;
}

// close(engine): stops the thread and closes the socket; idempotent.
napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!getArgs(env, info, 1, argv)) return nullptr;
  void* data = nullptr;
  if (napi_get_value_external(env, argv[0], &data) != napi_ok || data == nullptr) return fail(env, nullptr, "kith udp: not an engine");
  Engine* e = static_cast<Engine*>(data);
  unhook(e);
  shutdown(e);
  return undefinedValue(env);
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"send", nullptr, Send, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"store", nullptr, Store, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setGeneration", nullptr, SetGeneration, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, GetStats, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
