// One loaded version of a plugin, as its users hold it: the T of a
// hotswap::slot (module_slot.hpp). Move-only; it owns its image
// (detail/module_image.hpp: shadow copy, dlopen handle, descriptor, state),
// and destroying it unloads the version (detail/unload_decision.hpp decides
// whether the code leaves the process: unloaded, retained or quarantined).
//
// The kernel's rule decides when the destructor runs: on the domain's
// reclaimer, after the version's grace period, its last pin and its last
// keepalive. A published version's unload is then handed to a worker thread
// of its own, so a plugin whose shutdown hangs delays nobody else; its loader
// counts it (module_loader::wait_for_unloads, and the process-wide
// wait_for_unloads in module_loader.hpp).
//
//   hotswap::modules::module_loader loader(options);   // module_loader.hpp
//   loaded_module m = loader.open(loader.read("calc.so"), interface_of<calc_api>(), "calc");
//   m.start();                    // the plugin's startup; throws module_error
//   m.api<calc_api>().add(1, 2);
#pragma once

#include <memory>
#include <utility>

#include "detail/module_image.hpp"
#include "detail/spare_threads.hpp"
#include "detail/unload_tracker.hpp"
#include "plugin.h"
#include "record.hpp"
#include "swap_timing.hpp"

namespace hotswap::modules {

class module_loader;

/// One loaded version: the T of a module slot. Move-only; destroying it unloads.
class loaded_module {
 public:
  loaded_module(loaded_module&&) noexcept = default;
  loaded_module& operator=(loaded_module&& o) noexcept {
    if (this != &o) {
      release();
      table_ = o.table_;
      state_ = o.state_;
      image_ = std::move(o.image_);
    }
    return *this;
  }
  loaded_module(const loaded_module&) = delete;
  loaded_module& operator=(const loaded_module&) = delete;
  /// A published version (on the reclaimer) unloads on a worker; one never
  /// published (a refused swap, on the swapping thread) unloads here.
  ~loaded_module() { release(); }

  /// The interface table: what callers use, one load away from the slot.
  const void* table() const noexcept { return table_; }
  template <class Interface>
  const Interface& api() const noexcept {
    return *static_cast<const Interface*>(table_);
  }
  void* state() const noexcept { return state_; }

  const hotswap_plugin_descriptor& descriptor() const noexcept { return image_->descriptor(); }
  /// Declared HOTSWAP_PLUGIN_SHADOW_SAFE: may be called in shadow mode (canary.hpp).
  bool shadow_safe() const noexcept { return image_->shadow_safe(); }
  const version_record& record() const noexcept { return *image_->record(); }
  const std::shared_ptr<version_record>& shared_record() const noexcept { return image_->record(); }

  // Before publishing (module_slot drives these). Each throws module_error.
  void start() {
    image_->start();
    state_ = image_->state();
  }
  void migrate_from(const loaded_module& serving) { image_->migrate_from(*serving.image_); }
  void self_test() { image_->self_test(); }
  /// How long each stage of loading and starting this version took.
  const swap_timing& timing() const noexcept { return image_->timing(); }

 private:
  friend class module_loader;
  explicit loaded_module(std::unique_ptr<detail::module_image> image)
      : table_(image->descriptor().table), image_(std::move(image)) {}

  void release() noexcept {
    if (!image_) return;
    if (image_->published())
      unload_on_worker(std::move(image_));
    else
      image_.reset();
  }

  /// A published version's unload, on a worker of its own (not the reclaimer):
  /// an idle reused thread or a new one (spare_threads.hpp; the worker runs
  /// none of the plugin's code itself, its hooks run where hook_runner.hpp
  /// says), counted by its loader's tracker and the process-wide one. The
  /// worker holds the loader's context until it has ended the count.
  static void unload_on_worker(std::unique_ptr<detail::module_image> image) noexcept {
    std::shared_ptr<detail::loader_context> ctx = image->context();
    detail::unload_tracker& all = detail::unload_tracker::process_wide();
    ctx->unloads.begin();
    all.begin();
    try {
      std::shared_ptr<detail::module_image> shared(std::move(image));  // a task is copyable; only it holds this
      detail::spare_threads::instance().run([shared = std::move(shared), ctx, &all]() mutable {
        shared.reset();
        ctx->unloads.end();
        all.end();
      });
    } catch (...) {  // no thread: the task that owned the image was destroyed, which unloaded it here
      ctx->unloads.end();
      all.end();
    }
  }

  const void* table_ = nullptr;
  void* state_ = nullptr;
  std::unique_ptr<detail::module_image> image_;
};

}  // namespace hotswap::modules
