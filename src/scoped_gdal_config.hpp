#pragma once
// Thread-local GDAL configuration options for the lifetime of an object, so a library call can pin
// what it needs (SQLite journalling of a scratch file, the date GeoPackage writes) without touching
// the process's settings, which are the CLI's.
#include <optional>
#include <string>

#include <cpl_conv.h>

namespace rsi {

class ScopedThreadConfig {
public:
    ScopedThreadConfig(const char* key, const char* value) : key_(key) {
        if (const char* previous = CPLGetThreadLocalConfigOption(key, nullptr)) previous_ = previous;
        CPLSetThreadLocalConfigOption(key, value);
    }
    ~ScopedThreadConfig() { CPLSetThreadLocalConfigOption(key_.c_str(), previous_ ? previous_->c_str() : nullptr); }
    ScopedThreadConfig(const ScopedThreadConfig&) = delete;
    ScopedThreadConfig& operator=(const ScopedThreadConfig&) = delete;

private:
    std::string key_;
    std::optional<std::string> previous_;
};

// GeoPackage records "last change" times; pinned, two runs (or a sharded run and a direct one) write
// byte-identical files.
inline ScopedThreadConfig pinned_vector_date() { return ScopedThreadConfig("OGR_CURRENT_DATE", "2000-01-01T00:00:00.000Z"); }

}  // namespace rsi
