// The shipped store bundles, declared once: every behaviour that holds for any store runs over
// all of them, 16 KiB pages included (TEST_CASE_TEMPLATE("...", Store, ZPAGE_TEST_STORES)).
#pragma once

#include <zpage/zpage.hpp>

#include <doctest/doctest.h>

namespace zpage_test {
template <class Codec>
using Store16K = zpage::CompressedPageStore<zpage::TraitsFor<Codec, 16384>>;
}  // namespace zpage_test

#define ZPAGE_TEST_STORES                                                                                   \
    zpage::Lz4Store, zpage::Lz4hcStore, zpage::ZstdStore, zpage::IdentityStore,                             \
        zpage_test::Store16K<zpage::Lz4>, zpage_test::Store16K<zpage::Lz4hc>, zpage_test::Store16K<zpage::Zstd>, \
        zpage_test::Store16K<zpage::Identity>

TYPE_TO_STRING(zpage::Lz4Store);
TYPE_TO_STRING(zpage::Lz4hcStore);
TYPE_TO_STRING(zpage::ZstdStore);
TYPE_TO_STRING(zpage::IdentityStore);
TYPE_TO_STRING(zpage_test::Store16K<zpage::Lz4>);
TYPE_TO_STRING(zpage_test::Store16K<zpage::Lz4hc>);
TYPE_TO_STRING(zpage_test::Store16K<zpage::Zstd>);
TYPE_TO_STRING(zpage_test::Store16K<zpage::Identity>);
