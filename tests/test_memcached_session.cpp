// zpage-memcached's protocol side without sockets: a conversation gets the replies memcached 1.6.18
// gives (recorded from it; the two places zpage differs say why), whatever way its bytes are cut
// into reads; pipelines longer than a
// turn finish; bad lines, bad data blocks and oversized values get their errors and lose nothing;
// counters wrap and floor as memcached's do.
#include "memcached_conversation.hpp"

#include <doctest/doctest.h>

#include <random>
#include <string>

namespace {

using namespace zpage_memcached;

using Server = zpage_memcached_test::InProcessServer;

// Feeds `input` to a session in pieces cut at the given sizes (the rest in one), as reads would
// deliver it, and returns all it replied.
std::string converse(Server& server, std::string_view input, const std::vector<std::size_t>& cuts = {}) {
    std::size_t next = 0;
    return zpage_memcached_test::converse_in_reads(server, input, [&] { return next < cuts.size() ? cuts[next++] : SIZE_MAX; });
}

// A conversation and the replies memcached 1.6.18 gave to it.
constexpr std::string_view conversation =
    "set a 5 0 3\r\nabc\r\nget a b\r\ngets a\r\nadd a 0 0 1\r\nx\r\nreplace zz 0 0 1\r\nx\r\n"
    "append a 0 0 2\r\nde\r\nprepend a 0 0 1\r\n_\r\nget a\r\ncas a 0 0 1 999\r\nq\r\ncas nope 0 0 1 1\r\nq\r\n"
    "set n 0 0 2\r\n10\r\ndecr n 1\r\nget n\r\nincr n 100\r\nincr a 1\r\nincr n x\r\ndelete n\r\ndelete n\r\n"
    "touch a 100\r\ntouch nope 1\r\nset q 1 0 2 noreply\r\nqq\r\nget q\r\ndelete a 5\r\nbogus\r\n\r\nmn\r\n";
constexpr std::string_view conversation_replies =
    "STORED\r\nVALUE a 5 3\r\nabc\r\nEND\r\nVALUE a 5 3 1\r\nabc\r\nEND\r\nNOT_STORED\r\nNOT_STORED\r\n"
    "STORED\r\nSTORED\r\nVALUE a 5 6\r\n_abcde\r\nEND\r\nEXISTS\r\nNOT_FOUND\r\n"
    "STORED\r\n9\r\nVALUE n 0 2\r\n9 \r\nEND\r\n109\r\n"
    "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    "CLIENT_ERROR invalid numeric delta argument\r\nDELETED\r\nNOT_FOUND\r\nTOUCHED\r\nNOT_FOUND\r\n"
    "VALUE q 1 2\r\nqq\r\nEND\r\nCLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
    "ERROR\r\nERROR\r\nMN\r\n";

TEST_CASE("a conversation gets memcached's replies, however its bytes are cut into reads") {
    {
        Server server;
        CHECK(converse(server, conversation) == conversation_replies);
    }
    {
        Server server;  // one byte per read: every command line and data block arrives in pieces
        CHECK(converse(server, conversation, std::vector<std::size_t>(conversation.size(), 1)) == conversation_replies);
    }
    std::mt19937_64 rng(7);
    for (int round = 0; round < 50; ++round) {
        Server server;
        std::vector<std::size_t> cuts;
        for (std::size_t n = 0; n < conversation.size(); n += cuts.back()) cuts.push_back(1 + rng() % 40);
        CAPTURE(round);
        CHECK(converse(server, conversation, cuts) == conversation_replies);
    }
}

TEST_CASE("a pipeline longer than one turn is answered in full and in order") {
    Server server;
    std::string input, expected;
    for (int i = 0; i < 1000; ++i) {
        const std::string key = "key" + std::to_string(i), value = "value-" + std::to_string(i * 7);
        input += "set " + key + " " + std::to_string(i) + " 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\n";
        input += "get " + key + "\r\n";
        expected += "STORED\r\nVALUE " + key + " " + std::to_string(i) + " " + std::to_string(value.size()) + "\r\n" +
                    value + "\r\nEND\r\n";
    }
    CHECK(converse(server, input) == expected);
    CHECK(server.backend->stats().items == 1000);
}

TEST_CASE("bad lines and bad data blocks get memcached's errors, and stored items stay") {
    Server server(1000);
    REQUIRE(converse(server, "set keep 7 0 5\r\nhello\r\n") == "STORED\r\n");
    const std::string long_key(251, 'k');
    // Each case, then a check that the connection still works.
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"set " + long_key + " 0 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
        {"get " + long_key + "\r\n", "CLIENT_ERROR bad command line format\r\n"},
        // memcached stores this key; protocol.txt forbids control characters in keys, and so does zpage.
        {"set ctl\x01key 0 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
        {"set k x 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
        {"set k 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n"},
        // memcached says "bad data chunk" and closes; either tells the client its line was bad.
        {"set k 0 0 1099511627776\r\n", "CLIENT_ERROR bad command line format\r\n"},
        {"set k 0 0 3\r\nabcdef\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"},  // "f" is read as a command
        {"set k 0 0 2000\r\n" + std::string(2000, 'v') + "\r\n", "SERVER_ERROR object too large for cache\r\n"},
        {"set k 0\r\n", "ERROR\r\n"},
        {"incr\r\n", "ERROR\r\n"},
        {"flush_all x\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
    };
    for (const auto& [input, reply] : cases) {
        CAPTURE(input.substr(0, 40));
        CHECK(converse(server, input + "version\r\n") == reply + "VERSION " + std::string(server_version) + "\r\n");
    }
    CHECK(converse(server, "get keep\r\n") == "VALUE keep 7 5\r\nhello\r\nEND\r\n");
    CHECK(converse(server, "get k\r\n") == "END\r\n");
}

TEST_CASE("a line that never ends closes the connection; a long multi-get does not") {
    Server server;
    {
        Session session(server.context, *server.context.workers[0], server.scratch);
        std::string out;
        const std::string endless(max_line_bytes + 1, 'x');
        CHECK(session.process(endless, out, commands_per_turn) == endless.size());
        CHECK(session.closing());
        CHECK(out == reply::line_too_long);
    }
    REQUIRE(converse(server, "set k1 0 0 1\r\nx\r\n") == "STORED\r\n");
    std::string get = "get";
    while (get.size() < 3 * max_line_bytes) get += " k1";
    std::string expected;
    for (std::size_t i = 0; i < (get.size() - 3) / 3; ++i) expected += "VALUE k1 0 1\r\nx\r\n";
    CHECK(converse(server, get + "\r\n") == expected + "END\r\n");
}

TEST_CASE("incr wraps at 2^64 and decr stops at 0, as memcached's do") {
    Server server;
    CHECK(converse(server, "set c 0 0 20\r\n18446744073709551615\r\nincr c 2\r\ndecr c 5\r\nget c\r\n") ==
          "STORED\r\n1\r\n0\r\nVALUE c 0 20\r\n0                   \r\nEND\r\n");
}

TEST_CASE("expiry: negative exptime is gone at once; flush_all empties the cache") {
    Server server;
    CHECK(converse(server, "set e 0 -1 1\r\nx\r\nget e\r\nset f 0 0 1\r\ny\r\nflush_all\r\nget f\r\n") ==
          "STORED\r\nEND\r\nSTORED\r\nOK\r\nEND\r\n");
    CHECK(server.backend->stats().items == 0);
}

}  // namespace

namespace {

TEST_CASE("a multi-key get stops when its replies reach the output bound, and resumes where it stopped") {
    Server server;
    std::string get = "get", expected;
    for (int i = 0; i < 40; ++i) {
        const std::string key = "k" + std::to_string(i), value(100 + i, static_cast<char>('a' + i % 26));
        REQUIRE(converse(server, "set " + key + " 0 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\n") ==
                "STORED\r\n");
        get += " " + key;
        expected += "VALUE " + key + " 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\n";
    }
    get += " missing\r\nversion\r\n";
    expected += "END\r\nVERSION " + std::string(server_version) + "\r\n";

    Session session(server.context, *server.context.workers[0], server.scratch);
    std::string input = get, sent;
    int turns = 0;
    while (!input.empty() && turns < 1000) {
        std::string out;  // replies sent before the next turn, as the event loop sends them
        input.erase(0, session.process(input, out, commands_per_turn, 500));
        CHECK(out.size() < 500 + 200);  // the bound, passed by at most one value's reply
        sent += out;
        ++turns;
    }
    CHECK(turns > 5);
    CHECK(sent == expected);
}

}  // namespace
