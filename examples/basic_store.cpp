// basic_store: stores real pages in a zpage::CompressedPageStore, reads them all back, and prints
// the store's statistics the way zram's mm_stat names them.
//
//   basic_store [FILE...]
//
// Each FILE is read as a flat run of 4 KiB pages (a trailing partial page is left out). With no
// FILE it uses the shared libraries this program has loaded: real machine code and data, as a
// page cache would hold them, on any Linux machine.
#include <zpage/zpage.hpp>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

namespace {

constexpr std::size_t page_size = 4096;

std::vector<std::string> loaded_libraries() {
    std::ifstream maps("/proc/self/maps");
    std::set<std::string> paths;
    for (std::string line; std::getline(maps, line);) {
        const auto slash = line.find('/');
        if (slash == std::string::npos) continue;
        const std::string path = line.substr(slash);
        if (path.find(".so") != std::string::npos) paths.insert(path);
    }
    return {paths.begin(), paths.end()};
}

bool append_pages(const std::string& path, std::vector<std::byte>& pages) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
    const std::size_t whole = bytes.size() / page_size * page_size;
    const auto* first = reinterpret_cast<const std::byte*>(bytes.data());
    pages.insert(pages.end(), first, first + whole);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> inputs(argv + 1, argv + argc);
    if (inputs.empty()) inputs = loaded_libraries();

    std::vector<std::byte> pages;
    for (const std::string& path : inputs) {
        if (!append_pages(path, pages)) {
            std::fprintf(stderr, "basic_store: cannot read %s\n", path.c_str());
            return 2;
        }
        std::printf("input: %s\n", path.c_str());
    }
    const std::size_t count = pages.size() / page_size;
    if (count == 0) {
        std::fprintf(stderr, "basic_store: no whole 4 KiB page in the input\n");
        return 2;
    }

    zpage::CompressedPageStore<> store(count);  // lz4, the size-class allocator, 4 KiB pages
    for (std::size_t i = 0; i < count; ++i) {
        const zpage::Status st = store.store(i, std::span<const std::byte, page_size>(&pages[i * page_size], page_size));
        if (!st) {
            std::fprintf(stderr, "basic_store: storing page %zu: %.*s\n", i, static_cast<int>(st.message().size()),
                         st.message().data());
            return 1;
        }
    }
    std::array<std::byte, page_size> back{};
    for (std::size_t i = 0; i < count; ++i) {
        if (!store.load(i, back) || std::memcmp(back.data(), &pages[i * page_size], page_size) != 0) {
            std::fprintf(stderr, "basic_store: page %zu did not read back intact\n", i);
            return 1;
        }
    }

    const zpage::Stats st = store.stats();
    std::printf("\n%zu pages (%.1f MiB) stored with %s and read back intact\n\n", count,
                static_cast<double>(count * page_size) / (1 << 20), store.compressor().name().c_str());
    zpage::Stats::for_each_field([&](std::string_view name, auto field, zpage::StatUnit unit) {
        const char* suffix = unit == zpage::StatUnit::bytes ? " B" : unit == zpage::StatUnit::pages ? " pages" : "";
        std::printf("  %-17.*s %14llu%s\n", static_cast<int>(name.size()), name.data(),
                    static_cast<unsigned long long>(st.*field), suffix);
    });
    std::printf("\n  ratio (orig_data_size / mem_used_total)   %.3f\n",
                static_cast<double>(st.orig_data_size) / static_cast<double>(st.mem_used_total));
    std::printf("  overhead (mem_used_total / compr_data_size) %.2f%%\n",
                100.0 * (static_cast<double>(st.mem_used_total) / static_cast<double>(st.compr_data_size) - 1));
    return 0;
}
