// zpage-memcached: the compressed cache behind the server, with its codec and eviction policy
// chosen at run time (each pair is a zpage::CompressedCache instantiation of its own).
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <zpage/adapters/compressed_cache.hpp>
#include <zpage/compressor/identity.hpp>

#include "codec_spec.hpp"  // zpage-bench's codec names: lz4, lz4-N, lz4hc-N, zstd-N, identity

namespace zpage_memcached {

// The largest value zpage-memcached can be configured to take (-I), and the cache's item limit:
// the value plus the server's per-item header.
inline constexpr std::size_t max_item_size_limit = std::size_t{16} << 20;
inline constexpr std::size_t item_header_bytes = 20;

template <class Codec>
struct ServerTraits : zpage::TraitsFor<Codec> {
    static constexpr std::size_t max_item_bytes = max_item_size_limit + item_header_bytes;
};

class CacheBackend {
public:
    virtual ~CacheBackend() = default;
    virtual zpage::Status set(const std::string& key, std::span<const std::byte> value) noexcept = 0;
    virtual zpage::Result<std::size_t> get(const std::string& key, std::vector<std::byte>& out) noexcept = 0;
    virtual bool erase(const std::string& key) noexcept = 0;
    virtual void clear() noexcept = 0;
    [[nodiscard]] virtual zpage::CacheStats stats() const noexcept = 0;
    [[nodiscard]] virtual zpage::AllocatorStats allocator_stats() const noexcept = 0;
    [[nodiscard]] virtual std::string codec_name() const = 0;
};

template <class Codec, class Eviction>
class CacheBackendFor final : public CacheBackend {
public:
    CacheBackendFor(const zpage::CacheConfig& config, Codec codec)
        : name_(codec.name()), cache_(config, std::move(codec)) {}

    zpage::Status set(const std::string& key, std::span<const std::byte> value) noexcept override {
        return cache_.set(key, value);
    }
    zpage::Result<std::size_t> get(const std::string& key, std::vector<std::byte>& out) noexcept override {
        return cache_.get(key, out);
    }
    bool erase(const std::string& key) noexcept override { return cache_.erase(key); }
    void clear() noexcept override { cache_.clear(); }
    [[nodiscard]] zpage::CacheStats stats() const noexcept override { return cache_.stats(); }
    [[nodiscard]] zpage::AllocatorStats allocator_stats() const noexcept override {
        return cache_.allocator_stats();
    }
    [[nodiscard]] std::string codec_name() const override { return name_; }

private:
    std::string name_;
    zpage::CompressedCache<std::string, ServerTraits<Codec>, zpage::Xxh3Hash<std::string>, std::equal_to<std::string>,
                           Eviction>
        cache_;
};

// The policies --eviction names: S3-FIFO that keeps small items longer (as memcached's slab
// classes do), the paper's S3-FIFO, CLOCK.
enum class EvictionChoice { s3fifo_size, s3fifo, lru };
inline constexpr std::array<std::pair<std::string_view, EvictionChoice>, 3> eviction_names{
    {{"s3fifo-size", EvictionChoice::s3fifo_size}, {"s3fifo", EvictionChoice::s3fifo}, {"lru", EvictionChoice::lru}}};

inline std::optional<EvictionChoice> parse_eviction(std::string_view name) noexcept {
    for (const auto& [n, choice] : eviction_names)
        if (n == name) return choice;
    return std::nullopt;
}

// Throws zpage_bench::BadInput for a codec zpage does not run, std::invalid_argument for a bad
// configuration.
inline std::unique_ptr<CacheBackend> make_backend(const zpage_bench::CodecSpec& codec, EvictionChoice eviction,
                                                  const zpage::CacheConfig& config) {
    using zpage_bench::CodecFamily;
    const auto with_eviction = [&]<class Codec>(Codec c) -> std::unique_ptr<CacheBackend> {
        switch (eviction) {
        case EvictionChoice::s3fifo_size: break;
        case EvictionChoice::s3fifo: return std::make_unique<CacheBackendFor<Codec, zpage::S3Fifo>>(config, c);
        case EvictionChoice::lru: return std::make_unique<CacheBackendFor<Codec, zpage::ClockLru>>(config, c);
        }
        return std::make_unique<CacheBackendFor<Codec, zpage::SizeAwareS3Fifo>>(config, c);
    };
    if (codec.recompression) throw zpage_bench::BadInput("codec pairs (A+B) are for page stores, not the cache");
    switch (codec.family) {
    case CodecFamily::lz4: return with_eviction(zpage::Lz4{codec.param});
    case CodecFamily::lz4hc: return with_eviction(zpage::Lz4hc{codec.param});
    case CodecFamily::zstd: return with_eviction(zpage::Zstd{codec.param});
    case CodecFamily::identity: return with_eviction(zpage::Identity{});
    case CodecFamily::kernel_only: break;
    }
    throw zpage_bench::BadInput("codec '" + codec.name + "' is the kernel's own; zpage runs lz4, lz4hc, zstd, identity");
}

}  // namespace zpage_memcached
