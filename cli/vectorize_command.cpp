// rsi vectorize MASK -o OUT (placeholder: being written).
#include "cli/command_context.hpp"

namespace rsi::cli {

void register_vectorize_command(CLI::App&, CommandContext&) {}

}  // namespace rsi::cli
