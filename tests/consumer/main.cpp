// Compiles and links against zpage the way a user's program does (every codec, so every library
// the target promises must come with it); exit code 0 means a page went through each store.
#include <zpage/zpage.hpp>

#include <array>

template <class Store>
bool round_trip() {
    Store store(4);
    std::array<std::byte, 4096> page{}, back{};
    for (std::size_t i = 0; i < page.size(); i += 3) page[i] = static_cast<std::byte>(i);
    return store.store(1, page) && store.load(1, back) && back == page;
}

int main() {
    const bool ok = round_trip<zpage::Lz4Store>() && round_trip<zpage::Lz4hcStore>() &&
                    round_trip<zpage::ZstdStore>() && round_trip<zpage::IdentityStore>();
    return ok ? 0 : 1;
}
