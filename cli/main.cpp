// rsi: the command-line front end. Parses, sets global settings once, runs one library call, and
// maps errors to exit codes in one place: 0 ok, 1 runtime error, 2 usage error, 130/143 interrupted.
#include <cpl_error.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <new>
#include <sstream>

#include "cli/argv_prepass.hpp"
#include "cli/command_context.hpp"
#include "src/output_file.hpp"
#include "src/versions.hpp"
#include "tiling/error.hpp"

namespace {

bool g_quiet_warnings = false;

// GDAL failures reach the user through rsi::Error (with context); only warnings are shown here.
void CPL_STDCALL cli_gdal_error_handler(CPLErr severity, CPLErrorNum, const char* message) {
    if (severity == CE_Warning && !g_quiet_warnings) std::fprintf(stderr, "rsi: GDAL warning: %s\n", message);
}

// One malloc arena for the whole process, unless MALLOC_ARENA_MAX says otherwise. Tiles and strips are
// allocated by one thread and freed by another (reader, model, writer); with glibc's per-thread arenas
// that kept unmapping and re-faulting pages (13-22 s of system time on a 32000 x 1200 strip, against
// 1.5-5 s with one arena; wall 47-53 s against 40-43 s) and let every arena keep its own free memory
// (peak RSS 540-600 MB against ~500 MB). Measured in docs/BENCHMARKS.md, session 13.
void use_one_malloc_arena() {
#ifdef __GLIBC__
    if (!std::getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 1);
#endif
}

void print_versions() {
    const rsi::LibraryVersions v = rsi::library_versions();
    std::cout << "rsi " << v.rsi << "\nGDAL " << v.gdal << "\nPROJ " << v.proj << "\nOpenCV " << v.opencv
              << "\nLibTorch " << v.libtorch << "\n";
}

// The innermost parsed subcommand ("model check" is model -> check).
const CLI::App* leaf_subcommand(const CLI::App& app) {
    const CLI::App* current = &app;
    while (!current->get_subcommands().empty()) current = current->get_subcommands().front();
    return current;
}

std::string subcommand_name(const CLI::App& app) {
    std::string name = "rsi";
    for (const CLI::App* c = &app; !c->get_subcommands().empty();) {
        c = c->get_subcommands().front();
        name += " " + c->get_name();
    }
    return name;
}

// CLI11's message, but naming the word it did not know where a subcommand was expected (`rsi model
// bogus` said only "A subcommand is required").
std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e) {
    const CLI::App* leaf = leaf_subcommand(app);
    const auto choices = leaf->get_subcommands([](const CLI::App*) { return true; });
    const auto positionals = leaf->get_options([](const CLI::Option* o) { return o->get_positional(); });
    if (!choices.empty() && positionals.empty() && leaf->get_subcommands().empty()) {  // `rsi submit` takes words itself
        for (const std::string& word : leaf->remaining()) {
            if (word.empty() || word[0] == '-') continue;
            std::string names;
            for (const CLI::App* c : choices) names += (names.empty() ? "" : ", ") + c->get_name();
            return "unknown subcommand '" + word + "' (expected " + names + ")";
        }
    }
    const std::string message = e.what();
    const std::string listed = "were not expected: ";
    if (const size_t at = message.find(listed); at != std::string::npos) {  // CLI11 lists them as parsed: rsi hands it argv reversed
        std::vector<std::string> words;
        std::istringstream in(message.substr(at + listed.size()));
        for (std::string word; in >> word;) words.insert(words.begin(), word);
        std::string text;
        for (const std::string& word : words) text += (text.empty() ? "" : " ") + word;
        return message.substr(0, at + listed.size()) + text;
    }
    if (message.rfind("--config:", 0) == 0) return "--config takes two words, KEY VALUE (e.g. --config GDAL_NUM_THREADS 2)";
    return message;
}

// The one-line error on stderr; with --json also a JSON object on stdout, so that a script reading
// stdout gets a document either way: {"error": ..., "command": ..., "exit_code": ...}.
void report_failure(const std::string& command, const std::string& message, int exit_code, bool json) {
    std::cerr << command << ": " << message << "\n";
    if (json) rsi::cli::print_json({{"command", command}, {"error", message}, {"exit_code", exit_code}});
}

// Whether the command line asks for --json, read from the words themselves: when it fails to parse,
// the flag may not have been reached (CLI11 stops at the first bad word).
bool asks_for_json(const std::vector<std::string>& args) {
    for (const std::string& word : args) {
        if (word == "--") break;
        if (word == "--json") return true;
    }
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    use_one_malloc_arena();  // first: before any thread allocates
    using namespace rsi::cli;
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        args = rewrite_gdal_style_options(args);
    } catch (const std::invalid_argument& e) {
        report_failure("rsi", e.what(), 2, asks_for_json(args));
        return 2;
    }
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 parses a reversed vector

    CLI::App app{"rsi: remote-sensing interpretation of large georeferenced images", "rsi"};  // "rsi" names the usage lines
    app.require_subcommand(0, 1);
    bool show_version = false;
    app.add_flag("--version", show_version, "Print the versions of rsi, GDAL, PROJ, OpenCV and LibTorch");
    CommandContext context;
    register_buildings_command(app, context);
    register_segment_command(app, context);
    register_scene_command(app, context);
    register_eval_command(app, context);
    register_submit_command(app, context);
    register_merge_command(app, context);
    register_info_command(app, context);
    register_tile_command(app, context);
    register_model_command(app, context);
    register_vectorize_command(app, context);

    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        report_failure(subcommand_name(app), parse_error_message(app, e) + " (see --help)", 2,
                       context.common.json || asks_for_json(args));
        return 2;
    }
    if (show_version) {
        try {
            print_versions();
        } catch (const std::exception& e) {
            std::cerr << "rsi: " << e.what() << "\n";
            return 1;
        }
        return 0;
    }
    const CLI::App* leaf = leaf_subcommand(app);
    if (leaf == &app) {  // `rsi` alone: a usage error, so the help goes where errors go (stdout stays for results)
        std::cerr << app.help();
        return 2;
    }
    const std::string name = subcommand_name(app);
    g_quiet_warnings = context.common.quiet;
    CPLSetErrorHandler(cli_gdal_error_handler);
    install_interrupt_handlers();
    try {
        apply_global_settings(context.common, mentions_remote_path(args));
        const int rc = context.actions.at(leaf)();
        // From here on a signal ends the process at once, as without rsi's handlers (the shell sees
        // 130/143): the exit code is settled, and one caught meanwhile would be lost in the teardown.
        restore_default_interrupt_handlers();
        const int code = exit_code_after(rc);
        if (code != rc) std::cerr << name << ": interrupted after its work was done (the outputs are complete and kept)\n";
        return code;
    } catch (const rsi::Error& e) {
        if (e.kind() == rsi::ErrorKind::cancelled) {
            const int sig = interrupt_signal();
            std::cerr << name << ": interrupted\n";
            return sig == SIGTERM ? 143 : 130;
        }
        const int code = e.kind() == rsi::ErrorKind::usage ? 2 : 1;
        report_failure(name, error_message_for_user(e.what()), code, context.common.json);
        return code;
    } catch (const std::bad_alloc&) {
        // It said "std::bad_alloc". Most likely an explicit size the memory cannot hold.
        report_failure(name, "out of memory (where a model runs, a smaller --batch or --tile-size may fit)", 1, context.common.json);
        return 1;
    } catch (const std::exception& e) {
        report_failure(name, error_message_for_user(e.what()), 1, context.common.json);
        return 1;
    }
}
