#include "train/job_store.h"

#include <condition_variable>
#include <cstdlib>
#include <thread>

#include "core/errors.h"
#include "train/distributed_group.h"

namespace qf::train {

struct JobStore::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  std::mutex mu;  // the store's client is shared by the caller and the beating thread
  std::string where;
  bool host = false;
  std::thread beater;
  std::mutex beat_mu;
  std::condition_variable beat_cv;
  bool stop = false;
};

JobStore::JobStore(const DistEnv& env, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  impl_->host = env.rank == 0 && !(agent && std::string(agent) == "True");
  impl_->where = env.master_addr + ":" + std::to_string(env.master_port);
  impl_->store = detail::connect_store(env, impl_->host, std::chrono::steady_clock::now() + timeout,
                                       timeout, "experiment rank " + std::to_string(env.rank));
}

JobStore::~JobStore() {
  {
    std::lock_guard<std::mutex> lock(impl_->beat_mu);
    impl_->stop = true;
  }
  impl_->beat_cv.notify_all();
  if (impl_->beater.joinable()) impl_->beater.join();
}

void JobStore::beat(const std::string& key, std::chrono::milliseconds interval) {
  add(key, 1);
  impl_->beater = std::thread([this, key, interval] {
    std::unique_lock<std::mutex> lock(impl_->beat_mu);
    while (!impl_->beat_cv.wait_for(lock, interval, [this] { return impl_->stop; })) {
      try {
        std::lock_guard<std::mutex> store_lock(impl_->mu);
        impl_->store->add(key, 1);
      } catch (const std::exception&) {
        return;  // the store is gone; the caller's next call says so
      }
    }
  });
}

bool JobStore::hosts() const {
  return impl_->host;
}

namespace {

template <class F>
auto guarded(std::mutex& mu, const std::string& where, const std::string& what, F f) {
  std::lock_guard<std::mutex> lock(mu);
  try {
    return f();
  } catch (const std::exception& e) {
    throw Error("the job's store at " + where + " failed while " + what +
                " (experiment rank 0 gone?): " + detail::reason(e));
  }
}

}  // namespace

void JobStore::set(const std::string& key, const std::string& value) {
  guarded(impl_->mu, impl_->where, "setting " + key,
          [&] { impl_->store->set(key, std::vector<uint8_t>(value.begin(), value.end())); });
}

std::optional<std::string> JobStore::try_get(const std::string& key) {
  return guarded(impl_->mu, impl_->where, "reading " + key, [&]() -> std::optional<std::string> {
    if (!impl_->store->check({key})) return std::nullopt;
    const auto v = impl_->store->get(key);
    return std::string(v.begin(), v.end());
  });
}

std::string JobStore::get(const std::string& key) {
  return guarded(impl_->mu, impl_->where, "waiting for " + key, [&] {
    const auto v = impl_->store->get(key);
    return std::string(v.begin(), v.end());
  });
}

int64_t JobStore::add(const std::string& key, int64_t delta) {
  return guarded(impl_->mu, impl_->where, "counting " + key,
                 [&] { return impl_->store->add(key, delta); });
}

}  // namespace qf::train
