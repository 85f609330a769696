// Fuzz target: zpage-memcached's protocol parser and connection state machine (Session), fed any
// bytes as a client could send them.
//
// The same bytes go to two fresh servers: to one in a single read, to the other cut into reads
// at points drawn from the input's hash, as a network would cut them. A session must not crash,
// must reply the same whatever the cuts (lines beginning "STAT " aside: uptime and CPU time move),
// and its reply to a pipelined input must stay within what the input can ask for. Stored items
// are then read back through a third session and must match between the two servers.
//
// Input: the client's bytes, as is (the seeds are recorded client sessions).
#include "../memcached_conversation.hpp"

#include <xxhash.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"

namespace {

using zpage_memcached_test::converse_in_reads;

std::string without_stat_lines(std::string_view replies) {
    std::string kept;
    while (!replies.empty()) {
        const std::size_t end = std::min(replies.find('\n'), replies.size() - 1) + 1;
        const std::string_view line = replies.substr(0, end);
        if (!line.starts_with("STAT ")) kept.append(line);
        replies.remove_prefix(end);
    }
    return kept;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    // Small servers: two are made for every input. Replies past 256 KiB a turn wait for the
    // client to read them, as the event loop's bound makes them.
    constexpr std::size_t max_value = 64 << 10, capacity = 4 << 20, output_per_turn = 256 << 10;
    zpage_memcached_test::InProcessServer whole(max_value, capacity), pieces(max_value, capacity);
    const auto one_read = [] { return SIZE_MAX; };
    const std::string replies_whole = converse_in_reads(whole, input, one_read, output_per_turn);

    std::uint64_t state = XXH3_64bits(data, size) | 1;
    const std::string replies_cut = converse_in_reads(pieces, input, [&] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return std::size_t{1} + (state % 3 == 0 ? state % 64 : state % 5);  // mostly tiny reads
    }, output_per_turn);
    ZPAGE_FUZZ_CHECK(without_stat_lines(replies_whole) == without_stat_lines(replies_cut));

    // Both hold the same items: every key the input names reads back alike from each.
    std::string gets;
    for (std::size_t at = 0; at < input.size() && gets.size() < 4096;) {
        const std::size_t end = std::min(input.find('\n', at), input.size());
        const std::string_view line = input.substr(at, end - at);
        at = end + 1;
        const std::size_t first = line.find(' ');
        if (first == std::string_view::npos) continue;
        std::string_view key = line.substr(first + 1);
        key = key.substr(0, std::min(key.find(' '), key.find('\r')));
        if (!key.empty() && key.size() <= 250 &&
            std::none_of(key.begin(), key.end(), [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 127; }))
            gets.append("gets ").append(key).append("\r\n");
    }
    if (!gets.empty()) {
        ZPAGE_FUZZ_CHECK(converse_in_reads(whole, gets, one_read) == converse_in_reads(pieces, gets, one_read));
    }
    return 0;
}

// Seeds beside the recorded client sessions (tests/fuzz/seeds/fuzz_memcached_session/): what those
// clients never send (the meta protocol, gat, noreply everywhere, delays and absolute times,
// counters at their limits, bad lines).
extern "C" void zpage_fuzz_write_seeds(const char* dir) {
    static constexpr std::string_view sessions[] = {
        "set k 1 0 5\r\nhello\r\ngat 100 k\r\ngats 0 k\r\ntouch k -1\r\nget k\r\n",
        "ms m 2 T0 F7\r\nhi\r\nmg m v f t c k s\r\nmg missing v\r\nmn\r\nmd m q\r\nmd m\r\nmg m\r\n",
        "set n 0 0 20\r\n18446744073709551615\r\nincr n 1\r\ndecr n 99999999999999999999\r\nincr n x\r\n",
        "set a 0 0 1 noreply\r\na\r\nappend a 0 0 1 noreply\r\nb\r\nprepend a 0 0 1 noreply\r\nc\r\nget a\r\n",
        "flush_all 2\r\nflush_all noreply\r\nset t 0 2000000000 1\r\nx\r\nget t\r\nverbosity 1\r\nversion\r\n",
        "set big 0 0 4294967296\r\nget big\r\nset neg 0 0 -1\r\nset k 0 0 3\r\nabcdef\r\nget k\r\n",
        "cas k 0 0 1 0\r\nx\r\ngets k\r\ndelete k 0\r\ndelete k noreply\r\nstats items\r\nstats slabs\r\nstats settings\r\n",
        "get a b c d e f g h i j k l m n o p q r s t u v w x y z\r\nbogus command\r\n\r\nquit\r\n",
    };
    std::size_t number = 0;
    for (const std::string_view s : sessions) zpage_fuzz::write_seed(dir, number++, std::as_bytes(std::span(s.data(), s.size())));
}
