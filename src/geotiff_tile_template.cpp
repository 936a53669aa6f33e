#include "src/geotiff_tile_template.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cpl_vsi.h>

#include "tiling/error.hpp"

namespace rsi {

namespace {

constexpr uint16_t kImageWidth = 256, kImageLength = 257, kCompression = 259, kStripOffsets = 273,
                   kStripByteCounts = 279, kPlanarConfig = 284, kModelTiepoint = 33922, kModelTransformation = 34264;
constexpr uint16_t kTypeShort = 3, kTypeLong = 4, kTypeDouble = 12;

bool host_is_little_endian() {
    const uint16_t probe = 1;
    unsigned char first = 0;
    std::memcpy(&first, &probe, 1);
    return first == 1;
}

template <typename T>
T load(const std::vector<unsigned char>& bytes, uint64_t offset) {
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

struct IfdEntry {
    uint16_t type = 0;
    uint32_t count = 0;
    uint64_t field_offset = 0;  // where the 4-byte value/offset field is
};

// The first IFD of a classic little-endian TIFF, or an empty map when the file is anything else.
// Returns false when the file is not such a TIFF or has more than one IFD (overviews, masks).
bool parse_single_ifd(const std::vector<unsigned char>& bytes, std::vector<std::pair<uint16_t, IfdEntry>>& entries) {
    if (bytes.size() < 8 || bytes[0] != 'I' || bytes[1] != 'I' || load<uint16_t>(bytes, 2) != 42) return false;
    const uint64_t ifd = load<uint32_t>(bytes, 4);
    if (ifd + 2 > bytes.size()) return false;
    const uint16_t n = load<uint16_t>(bytes, ifd);
    if (ifd + 2 + 12ull * n + 4 > bytes.size()) return false;
    for (uint16_t i = 0; i < n; ++i) {
        const uint64_t at = ifd + 2 + 12ull * i;
        entries.push_back({load<uint16_t>(bytes, at), {load<uint16_t>(bytes, at + 2), load<uint32_t>(bytes, at + 4), at + 8}});
    }
    return load<uint32_t>(bytes, ifd + 2 + 12ull * n) == 0;
}

const IfdEntry* find(const std::vector<std::pair<uint16_t, IfdEntry>>& entries, uint16_t tag) {
    for (const auto& e : entries) {
        if (e.first == tag) return &e.second;
    }
    return nullptr;
}

// A single SHORT or LONG value stored in the entry itself.
std::optional<uint64_t> inline_integer(const std::vector<unsigned char>& bytes, const IfdEntry* e) {
    if (!e || e->count != 1) return std::nullopt;
    if (e->type == kTypeShort) return load<uint16_t>(bytes, e->field_offset);
    if (e->type == kTypeLong) return load<uint32_t>(bytes, e->field_offset);
    return std::nullopt;
}

// Band-sequential -> pixel-interleaved, writing the output in order (strided stores band by band were
// 3x slower). The common band counts get a fixed-size inner loop.
template <typename T, int Bands>
void interleave_fixed(const T* bands_in, T* out, int64_t pixels) {
    const T* in[Bands];
    for (int b = 0; b < Bands; ++b) in[b] = bands_in + static_cast<int64_t>(b) * pixels;
    for (int64_t i = 0; i < pixels; ++i) {
        for (int b = 0; b < Bands; ++b) out[i * Bands + b] = in[b][i];
    }
}

template <typename T>
void interleave_as(const T* bands_in, T* out, int64_t pixels, int bands) {
    switch (bands) {
        case 2: interleave_fixed<T, 2>(bands_in, out, pixels); return;
        case 3: interleave_fixed<T, 3>(bands_in, out, pixels); return;
        case 4: interleave_fixed<T, 4>(bands_in, out, pixels); return;
        default: break;
    }
    for (int64_t i = 0; i < pixels; ++i) {
        for (int b = 0; b < bands; ++b) out[i * bands + b] = bands_in[static_cast<int64_t>(b) * pixels + i];
    }
}

std::vector<unsigned char> write_through_gdal(const GeoTiffTileTemplate::GdalTileWriter& gdal_write,
                                              const std::string& path, const PixelWindow& window, const void* pixels) {
    gdal_write(path, window, pixels);
    vsi_l_offset length = 0;
    GByte* data = VSIGetMemFileBuffer(path.c_str(), &length, FALSE);
    std::vector<unsigned char> bytes;
    if (data) bytes.assign(data, data + length);
    VSIUnlink(path.c_str());
    return bytes;
}

}  // namespace

std::optional<GeoTiffTileTemplate> GeoTiffTileTemplate::build(const GdalTileWriter& gdal_write, const OriginOf& origin_of,
                                                              const PixelWindow& first, const PixelWindow& check,
                                                              int bands, GDALDataType type) {
    if (!host_is_little_endian() || first.width != check.width || first.height != check.height || first == check) {
        return std::nullopt;
    }
    GeoTiffTileTemplate t;
    t.width_ = first.width;
    t.height_ = first.height;
    t.bands_ = bands;
    t.element_bytes_ = GDALGetDataTypeSizeBytes(type);
    t.origin_of_ = origin_of;
    if (t.element_bytes_ != 1 && t.element_bytes_ != 2 && t.element_bytes_ != 4 && t.element_bytes_ != 8) return std::nullopt;
    const uint64_t strip_bytes = static_cast<uint64_t>(first.area()) * static_cast<uint64_t>(bands) *
                                 static_cast<uint64_t>(t.element_bytes_);
    const std::string prefix = "/vsimem/rsi_tile_template_" + std::to_string(reinterpret_cast<uintptr_t>(&t));
    const std::vector<unsigned char> zeros(strip_bytes, 0);
    t.bytes_ = write_through_gdal(gdal_write, prefix + "_first.tif", first, zeros.data());

    std::vector<std::pair<uint16_t, IfdEntry>> entries;
    if (!parse_single_ifd(t.bytes_, entries)) return std::nullopt;
    const auto width = inline_integer(t.bytes_, find(entries, kImageWidth));
    const auto height = inline_integer(t.bytes_, find(entries, kImageLength));
    const auto compression = inline_integer(t.bytes_, find(entries, kCompression));
    const auto offset = inline_integer(t.bytes_, find(entries, kStripOffsets));
    const auto count = inline_integer(t.bytes_, find(entries, kStripByteCounts));
    const IfdEntry* planar = find(entries, kPlanarConfig);
    const IfdEntry* tiepoint = find(entries, kModelTiepoint);
    if (!width || !height || *width != static_cast<uint64_t>(first.width) || *height != static_cast<uint64_t>(first.height) ||
        compression.value_or(1) != 1 || !offset || !count || *count != strip_bytes ||
        (bands > 1 && inline_integer(t.bytes_, planar).value_or(1) != 1) || find(entries, kModelTransformation) ||
        !tiepoint || tiepoint->type != kTypeDouble || tiepoint->count != 6) {
        return std::nullopt;
    }
    t.strip_offset_ = *offset;
    t.strip_bytes_ = *count;
    t.tiepoint_offset_ = load<uint32_t>(t.bytes_, tiepoint->field_offset);
    const uint64_t strip_end = t.strip_offset_ + t.strip_bytes_;
    if (strip_end > t.bytes_.size() || t.tiepoint_offset_ + 48 > t.bytes_.size() ||
        (t.tiepoint_offset_ + 48 > t.strip_offset_ && t.tiepoint_offset_ < strip_end)) {
        return std::nullopt;
    }

    // The self-check: GDAL's own file for another window, with non-trivial pixels.
    std::vector<unsigned char> pattern(strip_bytes);
    for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<unsigned char>((i * 131 + i / 977) & 0x7f);
    const std::vector<unsigned char> expected = write_through_gdal(gdal_write, prefix + "_check.tif", check, pattern.data());
    if (expected.empty() || expected != t.file_bytes(check, pattern.data())) return std::nullopt;
    return t;
}

void GeoTiffTileTemplate::patch_origin(unsigned char* tiepoint, const PixelWindow& window) const {
    const std::array<double, 2> origin = origin_of_(window);
    std::memcpy(tiepoint + 24, &origin[0], 8);  // map x, y: the 4th and 5th of the tie point's doubles
    std::memcpy(tiepoint + 32, &origin[1], 8);
}

void GeoTiffTileTemplate::interleave(const void* pixels, unsigned char* strip) const {
    const int64_t n = width_ * height_;
    if (bands_ == 1) {
        std::memcpy(strip, pixels, strip_bytes_);
        return;
    }
    switch (element_bytes_) {
        case 1: interleave_as(static_cast<const uint8_t*>(pixels), reinterpret_cast<uint8_t*>(strip), n, bands_); break;
        case 2: interleave_as(static_cast<const uint16_t*>(pixels), reinterpret_cast<uint16_t*>(strip), n, bands_); break;
        case 4: interleave_as(static_cast<const uint32_t*>(pixels), reinterpret_cast<uint32_t*>(strip), n, bands_); break;
        default: interleave_as(static_cast<const uint64_t*>(pixels), reinterpret_cast<uint64_t*>(strip), n, bands_); break;
    }
}

std::vector<unsigned char> GeoTiffTileTemplate::file_bytes(const PixelWindow& window, const void* pixels) const {
    std::vector<unsigned char> file = bytes_;
    patch_origin(file.data() + tiepoint_offset_, window);
    std::vector<unsigned char> strip(strip_bytes_);  // aligned for the element type, unlike the file offset
    interleave(pixels, strip.data());
    std::memcpy(file.data() + strip_offset_, strip.data(), strip_bytes_);
    return file;
}

void GeoTiffTileTemplate::write(const std::string& path, const PixelWindow& window, const void* pixels,
                                std::vector<unsigned char>& scratch) const {
    if (window.width != width_ || window.height != height_) {
        throw Error(path + ": internal error: tile template used for a window of another size");
    }
    // scratch = the interleaved strip first (allocator-aligned, as the element type needs), then the file
    // without its strip: header and trailer, a few hundred bytes.
    const uint64_t strip_end = strip_offset_ + strip_bytes_;
    const uint64_t strip_room = bands_ == 1 ? 0 : strip_bytes_;
    scratch.resize(strip_room + bytes_.size() - strip_bytes_);
    unsigned char* head = scratch.data() + strip_room;
    std::memcpy(head, bytes_.data(), strip_offset_);
    std::memcpy(head + strip_offset_, bytes_.data() + strip_end, bytes_.size() - strip_end);
    patch_origin(head + (tiepoint_offset_ < strip_offset_ ? tiepoint_offset_ : tiepoint_offset_ - strip_bytes_), window);
    const unsigned char* strip = static_cast<const unsigned char*>(pixels);
    if (bands_ != 1) {
        interleave(pixels, scratch.data());
        strip = scratch.data();
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) throw Error(path + ": cannot create the tile: " + std::strerror(errno));
    iovec parts[3] = {{head, strip_offset_},
                      {const_cast<unsigned char*>(strip), strip_bytes_},
                      {head + strip_offset_, bytes_.size() - strip_end}};
    int first = 0;
    while (first < 3) {
        const ssize_t done = ::writev(fd, parts + first, 3 - first);
        if (done < 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            ::close(fd);
            throw Error(path + ": writing the tile failed: " + std::strerror(e));
        }
        size_t left = static_cast<size_t>(done);
        while (first < 3 && left >= parts[first].iov_len) {
            left -= parts[first].iov_len;
            ++first;
        }
        if (first < 3) {
            parts[first].iov_base = static_cast<unsigned char*>(parts[first].iov_base) + left;
            parts[first].iov_len -= left;
        }
    }
    if (::close(fd) != 0) throw Error(path + ": writing the tile failed: " + std::strerror(errno));
}

}  // namespace rsi
