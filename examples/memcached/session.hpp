// zpage-memcached: one connection's side of the text protocol, without the socket: it takes the
// bytes a client sent, runs every complete command and data block in them, and appends the
// replies. The event loop (server.hpp) owns the socket and the buffers.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "item_store.hpp"
#include "protocol.hpp"
#include "server_stats.hpp"

namespace zpage_memcached {

inline constexpr std::string_view server_version = "1.6.0-zpage";  // memcached's protocol, zpage's server

struct ServerSettings {
    std::vector<std::string> listen_hosts{"127.0.0.1"};
    std::uint16_t port = 11211;
    std::size_t memory_mib = 64;
    std::size_t max_connections = 1024;
    unsigned threads = 4;
    std::size_t max_item_bytes = std::size_t{1} << 20;
    bool memcached_keys = false;  // accept keys as memcached does (see valid_key)
    std::string codec = "lz4";
    std::string eviction = "s3fifo-size";  // a name parse_eviction takes
};

// What every connection shares.
struct ServerContext {
    ServerSettings settings;
    ItemStore& items;
    ConnectionCounters connections;
    std::vector<std::unique_ptr<CommandCounters>> workers;  // one per worker thread, fixed at start
    std::atomic<int> verbosity{0};
};

class Session {
public:
    Session(ServerContext& server, CommandCounters& counters, Scratch& scratch) noexcept
        : server_(server), counters_(counters), scratch_(scratch) {}

    // Runs the commands `input` holds, at most `max_commands` of them, appending their replies to
    // `out` until it holds `max_output` bytes; returns how many bytes of `input` it used (a
    // command line or data block not yet whole is left for the next call, and so is a multi-key
    // get stopped at `max_output`: the next call resumes it at its next key). After it, closing()
    // says the connection is to be closed once `out` is sent (quit, a line too long).
    std::size_t process(std::string_view input, std::string& out, std::size_t max_commands,
                        std::size_t max_output = SIZE_MAX) {
        max_output_ = max_output;
        std::size_t used = 0;
        for (std::size_t n = 0; n < max_commands && !closing_ && out.size() < max_output; ++n) {
            const std::string_view rest = input.substr(used);
            if (swallow_ > 0) {  // the data block of a store refused before it arrived
                const std::size_t take = std::min<std::size_t>(swallow_, rest.size());
                swallow_ -= take;
                used += take;
                if (swallow_ > 0) break;
                continue;
            }
            if (pending_) {
                const std::size_t block = pending_->bytes + 2;
                if (rest.size() < block) break;
                finish_store(rest.substr(0, block), out);
                used += block;
                continue;
            }
            const std::size_t newline = rest.find('\n');
            if (newline == std::string_view::npos) {
                if (rest.size() > line_limit(rest)) {
                    out += reply::line_too_long;
                    closing_ = true;
                    used = input.size();
                }
                break;
            }
            std::string_view line = rest.substr(0, newline);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (line.size() > line_limit(line)) {
                out += reply::line_too_long;
                closing_ = true;
                used = input.size();
                break;
            }
            execute(line, out);
            if (resume_key_ != 0) break;  // a get stopped at max_output: its line stays
            used += newline + 1;
        }
        CommandCounters::bump(counters_.bytes_read, used);
        return used;
    }

    [[nodiscard]] bool closing() const noexcept { return closing_; }
    // Bytes a pending data block still needs beyond what process() was last given, as a hint for
    // how much to read.
    [[nodiscard]] std::size_t pending_block_bytes() const noexcept { return pending_ ? pending_->bytes + 2 : 0; }

private:
    struct PendingStore {
        StoreMode mode;
        std::string key;
        std::uint32_t flags;
        std::int64_t exptime;
        std::size_t bytes;
        std::uint64_t cas;
        bool noreply;
        // ms only: the flags its reply echoes (" Oopaque k<key>"), and whether it returns the CAS.
        std::optional<std::string> meta_echo;
        bool meta_return_cas = false;
    };

    [[nodiscard]] bool key_ok(std::string_view key) const noexcept {
        return valid_key(key, server_.settings.memcached_keys);
    }

    static std::size_t line_limit(std::string_view line) noexcept {
        const bool retrieval = line.starts_with("get ") || line.starts_with("gets ") || line.starts_with("gat ") ||
                               line.starts_with("gats ");
        return retrieval ? max_get_line_bytes : max_line_bytes;
    }

    void say(std::string& out, std::string_view text) const {
        if (!noreply_) out += text;
    }

    void execute(std::string_view line, std::string& out) {
        split_tokens(line, tokens_);
        noreply_ = false;
        if (tokens_.empty()) {
            out += reply::error;
            return;
        }
        const std::string_view cmd = tokens_[0];
        if (cmd == "get" || cmd == "gets") return retrieve(out, 1, cmd == "gets", std::nullopt);
        if (cmd == "gat" || cmd == "gats") {
            if (tokens_.size() < 2) {
                out += reply::error;
                return;
            }
            const auto exptime = parse_number<std::int64_t>(tokens_[1]);
            if (!exptime) {
                out += reply::bad_exptime;
                return;
            }
            return retrieve(out, 2, cmd == "gats", exptime);
        }
        if (cmd == "set") return begin_store(StoreMode::set, out);
        if (cmd == "add") return begin_store(StoreMode::add, out);
        if (cmd == "replace") return begin_store(StoreMode::replace, out);
        if (cmd == "append") return begin_store(StoreMode::append, out);
        if (cmd == "prepend") return begin_store(StoreMode::prepend, out);
        if (cmd == "cas") return begin_store(StoreMode::cas, out);
        if (cmd == "delete") return remove(out);
        if (cmd == "incr" || cmd == "decr") return arith(out, cmd == "incr");
        if (cmd == "touch") return touch(out);
        if (cmd == "flush_all") return flush_all(out);
        if (cmd == "stats") return stats(out);
        if (cmd == "version") {  // memcached 1.6 ignores anything after it, noreply too
            ((out += "VERSION ") += server_version) += "\r\n";
            return;
        }
        if (cmd == "verbosity" && (tokens_.size() == 2 || tokens_.size() == 3)) {
            // As memcached 1.6: "verbosity noreply" is level 0 and says nothing.
            noreply_ = tokens_.back() == "noreply";
            const auto level = tokens_.size() == 2 && noreply_ ? std::optional<int>(0) : parse_number<int>(tokens_[1]);
            if (level) server_.verbosity.store(*level, std::memory_order_relaxed);
            say(out, level ? reply::ok : reply::bad_format);
            return;
        }
        if (cmd == "quit" && tokens_.size() == 1) {
            closing_ = true;
            return;
        }
        if (cmd == "mn" && tokens_.size() == 1) {  // the meta protocol's no-op: a pipeline's end marker
            out += "MN\r\n";
            return;
        }
        if (cmd == "mg") return meta_get(out);
        if (cmd == "ms") return meta_set(out);
        if (cmd == "md") return meta_delete(out);
        out += reply::error;
    }

    bool take_noreply(std::size_t arguments) {
        noreply_ = tokens_.size() == arguments + 1 && tokens_.back() == "noreply";
        return noreply_;
    }

    // get/gets/gat/gats <key>*: keys from tokens_[first].
    void retrieve(std::string& out, std::size_t first, bool with_cas, std::optional<std::int64_t> touch_exptime) {
        if (tokens_.size() <= first) {
            out += touch_exptime ? reply::end : reply::error;  // memcached: "gat 10" finds nothing
            return;
        }
        for (std::size_t i = first; i < tokens_.size(); ++i) {
            if (!key_ok(tokens_[i])) {
                out += reply::bad_format;
                return;
            }
        }
        const std::size_t start = first + resume_key_;
        resume_key_ = 0;
        for (std::size_t i = start; i < tokens_.size(); ++i) {
            if (out.size() >= max_output_ && i > start) {  // the rest next time, once replies drain
                resume_key_ = i - first;
                return;
            }
            const std::string_view key = tokens_[i];
            CommandCounters::bump(touch_exptime ? counters_.cmd_touch : counters_.cmd_get);
            const auto item = touch_exptime ? server_.items.get_and_touch(key, *touch_exptime, scratch_)
                                            : server_.items.get(key, scratch_);
            if (!item) {
                CommandCounters::bump(touch_exptime ? counters_.touch_misses : counters_.get_misses);
                continue;
            }
            CommandCounters::bump(touch_exptime ? counters_.touch_hits : counters_.get_hits);
            ((out += "VALUE ") += key) += ' ';
            append_number(out, item->header.flags);
            out += ' ';
            append_number(out, item->data.size());
            if (with_cas) {
                out += ' ';
                append_number(out, item->header.cas);
            }
            ((out += "\r\n") += item->data) += "\r\n";
        }
        out += reply::end;
    }

    // <cmd> <key> <flags> <exptime> <bytes> [<cas unique>] [noreply]
    void begin_store(StoreMode mode, std::string& out) {
        const std::size_t arguments = mode == StoreMode::cas ? 6 : 5;
        take_noreply(arguments);
        if (tokens_.size() != arguments + (noreply_ ? 1 : 0) || !key_ok(tokens_[1])) {
            say(out, tokens_.size() < arguments ? reply::error : reply::bad_format);
            return;
        }
        const auto flags = parse_number<std::uint32_t>(tokens_[2]);
        const auto exptime = parse_number<std::int64_t>(tokens_[3]);
        const auto bytes = parse_number<std::int64_t>(tokens_[4]);
        const auto cas = mode == StoreMode::cas ? parse_number<std::uint64_t>(tokens_[5]) : std::optional<std::uint64_t>(0);
        // memcached takes lengths up to INT_MAX - 2; larger or negative ones are a bad line.
        if (!flags || !exptime || !bytes || !cas || *bytes < 0 || *bytes > INT32_MAX - 2) {
            say(out, reply::bad_format);
            return;
        }
        CommandCounters::bump(counters_.cmd_set);
        const auto size = static_cast<std::size_t>(*bytes);
        if (size > server_.items.max_value_bytes()) {
            // Refused before the data arrives: the block is read and dropped, and a set's key
            // loses its old value too (see ItemStore::store).
            if (mode == StoreMode::set) server_.items.remove(tokens_[1], scratch_);
            say(out, reply::too_large);
            swallow_ = size + 2;
            return;
        }
        pending_ = PendingStore{mode, std::string(tokens_[1]), *flags, *exptime, size, *cas, noreply_, {}, false};
    }

    void finish_store(std::string_view block, std::string& out) {
        const PendingStore p = std::move(*pending_);
        pending_.reset();
        noreply_ = p.noreply;
        if (!block.ends_with("\r\n")) {
            noreply_ = noreply_ && !p.meta_echo;  // meta commands always report errors
            say(out, reply::bad_chunk);
            return;
        }
        std::uint64_t stored_cas = 0;
        const StoreOutcome outcome = server_.items.store(p.mode, p.key, p.flags, p.exptime, block.substr(0, p.bytes),
                                                         p.cas, scratch_, &stored_cas);
        if (p.meta_echo) return finish_meta_store(p, outcome, stored_cas, out);
        if (p.mode == StoreMode::cas) {
            CommandCounters::bump(outcome == StoreOutcome::stored  ? counters_.cas_hits
                                  : outcome == StoreOutcome::exists ? counters_.cas_badval
                                                                    : counters_.cas_misses);
        }
        switch (outcome) {
        case StoreOutcome::stored: say(out, reply::stored); break;
        case StoreOutcome::not_stored: say(out, reply::not_stored); break;
        case StoreOutcome::exists: say(out, reply::exists); break;
        case StoreOutcome::not_found: say(out, reply::not_found); break;
        case StoreOutcome::too_large: say(out, reply::too_large); break;
        case StoreOutcome::out_of_memory: say(out, reply::out_of_memory); break;
        }
    }

    // delete <key> [0] [noreply]
    void remove(std::string& out) {
        take_noreply(tokens_.size() - 1);
        const std::size_t args = tokens_.size() - (noreply_ ? 1 : 0);
        if (args < 2 || args > 3 || !key_ok(tokens_[1])) {
            say(out, args < 2 ? reply::error : reply::bad_format);
            return;
        }
        if (args == 3 && tokens_[2] != "0") {
            say(out, reply::bad_delete);
            return;
        }
        const bool hit = server_.items.remove(tokens_[1], scratch_) == DeleteOutcome::deleted;
        CommandCounters::bump(hit ? counters_.delete_hits : counters_.delete_misses);
        say(out, hit ? reply::deleted : reply::not_found);
    }

    // incr|decr <key> <delta> [noreply]
    void arith(std::string& out, bool incr) {
        take_noreply(3);
        if (tokens_.size() != 3 + (noreply_ ? 1 : 0) || !key_ok(tokens_[1])) {
            say(out, tokens_.size() < 3 ? reply::error : reply::bad_format);
            return;
        }
        const auto delta = parse_number<std::uint64_t>(tokens_[2]);
        if (!delta) {
            say(out, reply::bad_delta);
            return;
        }
        std::uint64_t result = 0;
        const ArithOutcome outcome = server_.items.arith(tokens_[1], incr, *delta, result, scratch_);
        if (outcome == ArithOutcome::not_found) {
            CommandCounters::bump(incr ? counters_.incr_misses : counters_.decr_misses);
            say(out, reply::not_found);
            return;
        }
        if (outcome == ArithOutcome::non_numeric) {
            say(out, reply::non_numeric);
            return;
        }
        if (outcome == ArithOutcome::out_of_memory) {
            say(out, reply::out_of_memory);
            return;
        }
        CommandCounters::bump(incr ? counters_.incr_hits : counters_.decr_hits);
        if (noreply_) return;
        append_number(out, result);
        out += "\r\n";
    }

    // touch <key> <exptime> [noreply]
    void touch(std::string& out) {
        take_noreply(3);
        if (tokens_.size() != 3 + (noreply_ ? 1 : 0) || !key_ok(tokens_[1])) {
            say(out, tokens_.size() < 3 ? reply::error : reply::bad_format);
            return;
        }
        const auto exptime = parse_number<std::int64_t>(tokens_[2]);
        if (!exptime) {
            say(out, reply::bad_exptime);
            return;
        }
        CommandCounters::bump(counters_.cmd_touch);
        const bool hit = server_.items.touch(tokens_[1], *exptime, scratch_);
        CommandCounters::bump(hit ? counters_.touch_hits : counters_.touch_misses);
        say(out, hit ? reply::touched : reply::not_found);
    }

    // flush_all [delay] [noreply]
    void flush_all(std::string& out) {
        take_noreply(tokens_.size() - 1);
        const std::size_t args = tokens_.size() - (noreply_ ? 1 : 0);
        std::optional<std::int64_t> delay = 0;
        if (args == 2) delay = parse_number<std::int64_t>(tokens_[1]);
        if (args > 2 || !delay) {
            say(out, args > 2 ? reply::bad_format : reply::bad_exptime);
            return;
        }
        CommandCounters::bump(counters_.cmd_flush);
        server_.items.flush(*delay);
        say(out, reply::ok);
    }

    // The meta protocol (protocol.txt, "Meta Commands"): mg, ms, md, mn. Flags are single letters,
    // some followed by a token; replies echo O (opaque) and k (key) and the requested fields in
    // the order asked. Not supported, and refused as a bad line: base64 keys (b), and the flags
    // that need per-item state this server does not keep (h, l: last access; N, R: vivify and
    // recache; I, x: invalidation). u (no LRU bump) and E (explicit CAS) are refused too.
    struct MetaFlags {
        bool quiet = false, value = false, ok = true;
        std::optional<std::int64_t> ttl;       // T
        std::optional<std::uint64_t> compare;  // C
        std::optional<std::uint32_t> flags;    // F
        char mode = 'S';                       // M
        std::string echo;                      // " O..." and " k..." as they go back
        std::vector<char> fields;              // f, c, s, t, k in the order asked (mg)
    };

    MetaFlags parse_meta_flags(std::string_view key, std::size_t first) const {
        MetaFlags m;
        for (std::size_t i = first; i < tokens_.size() && m.ok; ++i) {
            const std::string_view t = tokens_[i];
            const char flag = t[0];
            const std::string_view arg = t.substr(1);
            switch (flag) {
            case 'q': m.quiet = true; break;
            case 'v': m.value = true; break;
            case 'O':
                if (arg.size() > 32) m.ok = false;
                ((m.echo += " O") += arg);
                break;
            case 'k':
                ((m.echo += " k") += key);
                break;
            case 'f': case 'c': case 's': case 't': m.fields.push_back(flag); break;
            case 'T': m.ttl = parse_number<std::int64_t>(arg); m.ok = m.ok && m.ttl.has_value(); break;
            case 'C': m.compare = parse_number<std::uint64_t>(arg); m.ok = m.ok && m.compare.has_value(); break;
            case 'F': m.flags = parse_number<std::uint32_t>(arg); m.ok = m.ok && m.flags.has_value(); break;
            case 'M':
                m.mode = arg.size() == 1 ? static_cast<char>(std::toupper(static_cast<unsigned char>(arg[0]))) : '?';
                m.ok = m.ok && std::string_view("SEAPR").find(m.mode) != std::string_view::npos;
                break;
            default: m.ok = false;
            }
        }
        return m;
    }

    // mg <key> <flag>*: VA <size> <flags> and the value (v), HD <flags> without it, EN on a miss.
    void meta_get(std::string& out) {
        if (tokens_.size() < 2 || !key_ok(tokens_[1])) {
            out += reply::bad_format;
            return;
        }
        const std::string_view key = tokens_[1];
        const MetaFlags m = parse_meta_flags(key, 2);
        if (!m.ok) {
            out += reply::bad_format;
            return;
        }
        CommandCounters::bump(counters_.cmd_get);
        const auto item = m.ttl ? server_.items.get_and_touch(key, *m.ttl, scratch_) : server_.items.get(key, scratch_);
        if (!item) {
            CommandCounters::bump(counters_.get_misses);
            if (!m.quiet) (out += "EN") += "\r\n";
            return;
        }
        CommandCounters::bump(counters_.get_hits);
        if (m.value) {
            out += "VA ";
            append_number(out, item->data.size());
        } else {
            out += "HD";
        }
        for (const char field : m.fields) {
            (out += ' ') += field;
            switch (field) {
            case 'f': append_number(out, item->header.flags); break;
            case 'c': append_number(out, item->header.cas); break;
            case 's': append_number(out, item->data.size()); break;
            case 't': {
                const std::uint32_t now = server_.items.clock().now();
                if (item->header.exptime == 0) {
                    out += "-1";
                } else {
                    append_number(out, item->header.exptime > now ? item->header.exptime - now : 0);
                }
                break;
            }
            default: break;
            }
        }
        (out += m.echo) += "\r\n";
        if (m.value) (out += item->data) += "\r\n";
    }

    // ms <key> <datalen> <flag>*, then the data block: HD, NS (not stored), EX (CAS differs), NF.
    void meta_set(std::string& out) {
        const auto bytes = tokens_.size() >= 3 ? parse_number<std::int64_t>(tokens_[2]) : std::nullopt;
        if (tokens_.size() < 3 || !key_ok(tokens_[1]) || !bytes || *bytes < 0 || *bytes > INT32_MAX - 2) {
            out += reply::bad_format;
            return;
        }
        const std::string_view key = tokens_[1];
        MetaFlags m = parse_meta_flags(key, 3);
        const bool only_cas_returned = std::ranges::all_of(m.fields, [](char f) { return f == 'c'; });
        if (!m.ok || m.value || !only_cas_returned) {
            out += reply::bad_format;
            return;
        }
        CommandCounters::bump(counters_.cmd_set);
        const auto size = static_cast<std::size_t>(*bytes);
        if (size > server_.items.max_value_bytes()) {
            if (m.mode == 'S') server_.items.remove(key, scratch_);
            out += reply::too_large;
            swallow_ = size + 2;
            return;
        }
        StoreMode mode = StoreMode::set;
        switch (m.mode) {
        case 'E': mode = StoreMode::add; break;
        case 'A': mode = StoreMode::append; break;
        case 'P': mode = StoreMode::prepend; break;
        case 'R': mode = StoreMode::replace; break;
        default: mode = m.compare ? StoreMode::cas : StoreMode::set; break;
        }
        pending_ = PendingStore{mode,       std::string(key), m.flags.value_or(0), m.ttl.value_or(0), size,
                                m.compare.value_or(0), m.quiet,       std::move(m.echo), !m.fields.empty()};
    }

    void finish_meta_store(const PendingStore& p, StoreOutcome outcome, std::uint64_t stored_cas, std::string& out) {
        std::string_view code;
        switch (outcome) {
        case StoreOutcome::stored: code = "HD"; break;
        case StoreOutcome::not_stored: code = "NS"; break;
        case StoreOutcome::exists: code = "EX"; break;
        case StoreOutcome::not_found: code = "NF"; break;
        case StoreOutcome::too_large: out += reply::too_large; return;
        case StoreOutcome::out_of_memory: out += reply::out_of_memory; return;
        }
        if (p.noreply && outcome == StoreOutcome::stored) return;  // q hides success only
        out += code;
        if (p.meta_return_cas && outcome == StoreOutcome::stored) {
            out += " c";
            append_number(out, stored_cas);
        }
        (out += *p.meta_echo) += "\r\n";
    }

    // md <key> <flag>*: HD, NF, or EX when C names another CAS.
    void meta_delete(std::string& out) {
        if (tokens_.size() < 2 || !key_ok(tokens_[1])) {
            out += reply::bad_format;
            return;
        }
        const MetaFlags m = parse_meta_flags(tokens_[1], 2);
        if (!m.ok || m.value || !m.fields.empty() || m.ttl || m.flags) {
            out += reply::bad_format;
            return;
        }
        const DeleteOutcome outcome = server_.items.remove(tokens_[1], scratch_, m.compare);
        CommandCounters::bump(outcome == DeleteOutcome::deleted ? counters_.delete_hits : counters_.delete_misses);
        if (outcome == DeleteOutcome::deleted && m.quiet) return;
        out += outcome == DeleteOutcome::deleted ? "HD" : outcome == DeleteOutcome::exists ? "EX" : "NF";
        (out += m.echo) += "\r\n";
    }

    void stats(std::string& out) {
        const std::string_view what = tokens_.size() >= 2 ? tokens_[1] : std::string_view();
        if (tokens_.size() > 2) {
            out += reply::error;
            return;
        }
        if (what == "reset") {
            for (const auto& w : server_.workers) w->reset();
            out += reply::reset;
            return;
        }
        CacheBackend& cache = server_.items.cache();
        const zpage::CacheStats cs = cache.stats();
        const ServerSettings& set = server_.settings;
        if (what.empty()) {
            rusage usage{};
            ::getrusage(RUSAGE_SELF, &usage);
            const std::uint32_t uptime = server_.items.clock().now() - 2;
            stat(out, "pid", static_cast<std::uint64_t>(::getpid()));
            stat(out, "uptime", uptime);
            stat(out, "time", static_cast<std::uint64_t>(std::time(nullptr)));
            stat(out, "version", server_version);
            stat(out, "pointer_size", std::uint64_t{8 * sizeof(void*)});
            stat(out, "rusage_user", seconds(usage.ru_utime));
            stat(out, "rusage_system", seconds(usage.ru_stime));
            stat(out, "max_connections", set.max_connections);
            stat(out, "curr_connections", server_.connections.curr_connections.load());
            stat(out, "total_connections", server_.connections.total_connections.load());
            stat(out, "rejected_connections", server_.connections.rejected_connections.load());
            CommandCounters::for_each_field([&](std::string_view name, auto member) {
                std::uint64_t sum = 0;
                for (const auto& w : server_.workers) sum += ((*w).*member).load(std::memory_order_relaxed);
                stat(out, name, sum);
            });
            stat(out, "get_expired", server_.items.expired_reads());
            stat(out, "get_flushed", server_.items.flushed_reads());
            stat(out, "limit_maxbytes", cs.capacity_bytes);
            stat(out, "threads", set.threads);
            stat(out, "bytes", cs.bytes_used);
            stat(out, "curr_items", cs.items);
            stat(out, "total_items", cs.sets);
            stat(out, "evictions", cs.evictions);
            stat(out, "zpage_codec", cache.codec_name());
            stat(out, "zpage_eviction", set.eviction);
            stat(out, "zpage_bytes_stored", cs.bytes_stored);
            stat(out, "zpage_bytes_compressed", cs.bytes_compressed);
            stat(out, "zpage_index_bytes", cs.index_bytes);
            stat(out, "zpage_failed_sets", cs.failed_sets);
            char ratio[32];
            std::snprintf(ratio, sizeof ratio, "%.3f", cs.ratio());
            stat(out, "zpage_ratio", std::string_view(ratio));
        } else if (what == "settings") {
            stat(out, "maxbytes", cs.capacity_bytes);
            stat(out, "maxconns", set.max_connections);
            stat(out, "tcpport", set.port);
            std::string hosts;
            for (const auto& h : set.listen_hosts) hosts += (hosts.empty() ? "" : ",") + h;
            stat(out, "inter", hosts);
            stat(out, "verbosity", static_cast<std::uint64_t>(server_.verbosity.load()));
            stat(out, "num_threads", set.threads);
            stat(out, "item_size_max", set.max_item_bytes);
            stat(out, "evictions", std::string_view("on"));
            stat(out, "cas_enabled", std::string_view("yes"));
            stat(out, "zpage_codec", cache.codec_name());
            stat(out, "zpage_eviction", set.eviction);
        } else if (what == "items") {
            // One class: items are not sorted into slab classes here.
            stat(out, "items:1:number", cs.items);
            stat(out, "items:1:evicted", cs.evictions);
            stat(out, "items:1:outofmemory", cs.failed_sets);
        } else if (what == "slabs") {
            // The size-class allocator's spans stand in for slabs.
            const zpage::AllocatorStats as = cache.allocator_stats();
            stat(out, "1:used_chunks", as.objects);
            stat(out, "1:mem_requested", cs.bytes_compressed);
            stat(out, "active_slabs", as.spans);
            stat(out, "total_malloced", as.span_bytes);
            stat(out, "zpage_object_bytes", as.object_bytes);
            stat(out, "zpage_metadata_bytes", as.metadata_bytes);
        } else if (what == "sizes") {
            stat(out, "sizes_status", std::string_view("disabled"));
        } else {
            out += reply::error;
            return;
        }
        out += reply::end;
    }

    static std::string seconds(const timeval& tv) {
        char text[48];
        std::snprintf(text, sizeof text, "%ld.%06ld", static_cast<long>(tv.tv_sec), static_cast<long>(tv.tv_usec));
        return text;
    }
    static void stat(std::string& out, std::string_view name, std::string_view value) {
        ((((out += "STAT ") += name) += ' ') += value) += "\r\n";
    }
    static void stat(std::string& out, std::string_view name, std::uint64_t value) {
        ((out += "STAT ") += name) += ' ';
        append_number(out, value);
        out += "\r\n";
    }
    static void append_number(std::string& out, std::uint64_t value) {
        char digits[24];
        const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
        out.append(digits, end);
    }

    ServerContext& server_;
    CommandCounters& counters_;
    Scratch& scratch_;
    std::vector<std::string_view> tokens_;
    std::optional<PendingStore> pending_;
    std::size_t swallow_ = 0;
    std::size_t max_output_ = SIZE_MAX;
    std::size_t resume_key_ = 0;  // keys of a stopped get already answered; 0: none stopped
    bool noreply_ = false;
    bool closing_ = false;
};

}  // namespace zpage_memcached
