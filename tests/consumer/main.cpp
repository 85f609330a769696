// Compiles and links against zpage the way a user's program does; exit code 0 means it worked.
#include <zpage/errc.hpp>

int main() { return zpage::Status{}.ok() ? 0 : 1; }
