#pragma once
// Competition submissions from class masks: one library call writes a whole contest's result in the
// format's exact layout, checks it by reading it back, and optionally zips it.
//
//   tianchi   CSV, tab separated, no header: `name<TAB>rle` (src/tianchi_rle.hpp), 512x512 images
//             (datawhalechina/team-learning-cv, AerialImageSegmentation: Task1, Task4).
//   spacenet  CSV `ImageId,BuildingId,PolygonWKT_Pix,Confidence`, pixel-coordinate polygons, and
//             `ImageId,-1,POLYGON EMPTY,1` for an image without buildings (SpaceNetChallenge/utilities,
//             CosmiQ/solaris eval).
//   inria     single-band 8-bit GeoTIFF masks 0/255, same file names as the images (Inria Aerial Image
//             Labeling benchmark instructions).
//   xview2    test_localization_{id}_prediction.png (0/1) and test_damage_{id}_prediction.png (1-4 from a
//             damage model, else the localization mask as class 1), uint8, 1024x1024
//             (DIUx-xView/xView2_scoring).
//   loveda    uint8 PNG label maps 0-6 (background, building, road, water, barren, forest, agriculture:
//             the ground truth's 1-7 minus one, as the official prediction script writes), same names
//             (Junjue-Wang/LoveDA).
//   gaofen    PNG label maps: track "buildings" 0/255; track "2020-9class" values 1-9 (road, building,
//             shrub and tree, lawn, land, waterbody, vehicle, impervious ground, other) from mask class
//             ids 0-8, with class_table.csv written beside. The exact value table of the official
//             submissions could not be confirmed (AICyberTeam/2020Gaofen publishes tracks, not formats).
//
// Every output is built under a temporary name and renamed into place only after validation.
//
// Resumable and sharded runs (docs/RELIABILITY.md, docs/CLUSTER.md): each finished image becomes a part
// folder `image-NNNNNN/` (NNNNNN: its position among all images in name order) in the parts folder
// OUTPUT.parts, holding its CSV rows (`rows.csv`) or its output files, renamed into place when complete
// and only then recorded in `shard-K-of-N.journal` (src/item_journal.hpp). job.json carries the
// fingerprint of the images, the format's options and `job_settings` (the model's weights hash, TTA...).
// The submission is assembled from the parts in name order, so it is byte-identical to a direct run.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/strip_journal.hpp"
#include "tiling/progress.hpp"

namespace rsi {

enum class SubmissionFormat { tianchi, spacenet, inria, xview2, loveda, gaofen };
SubmissionFormat parse_submission_format(std::string_view text);
const char* to_string(SubmissionFormat format);
bool writes_csv(SubmissionFormat format);

struct SubmissionItem {
    std::string name;  // the contest image's file name, e.g. "abc.jpg", "test_pre_00001.png"
    std::string mask;  // its class mask (band 1, integer values), any GDAL path including /vsimem/
};

// Makes the mask of one item on demand (e.g. by running a model on the image `item.mask` names) and
// returns the path of a scratch file, which is read once and then removed (with its sidecars). One
// image's mask exists at a time, so a contest of thousands of images needs no more than one.
using MaskMaker = std::function<std::string(const SubmissionItem& item)>;

struct SubmissionResult;

struct SubmissionOptions {
    SubmissionFormat format = SubmissionFormat::tianchi;
    std::vector<SubmissionItem> items;  // written in name order whatever the given order
    std::string output;                 // CSV formats: the file; the others: a folder
    std::string zip;                    // optional zip of the result (the CSV, or the folder's files)
    std::map<int, int> value_map;       // mask values remapped first (e.g. 255=1, or LoveDA 1..7 -> 0..6)
    std::string gaofen_track = "buildings";  // "buildings" or "2020-9class"
    bool xview2_damage = false;         // masks hold damage classes 0-4 (0 = no building)
    int64_t width = 0, height = 0;      // required mask size; 0: the format's (tianchi 512, xview2 1024, else any)
    double min_area_px = 0;             // spacenet: polygons with fewer pixels are left out
    bool overwrite = false;
    MaskMaker make_mask;                // optional: items name images, masks are made from them
    // Journaled runs: finished images are parts in `parts_dir` (default: output + ".parts").
    bool resume = false;                // continue from the journal; assemble the submission at the end
    std::optional<ShardSpec> shard;     // only this shard's images (balanced by pixel count); no submission:
                                        // merge_submission() assembles it once every shard is done
    std::string parts_dir;
    // Whatever else decides the masks (model weights hash, TTA, batch ...): part of the fingerprint, so a
    // resume or a sibling shard with other values is refused, naming them.
    std::map<std::string, std::string> job_settings;
    // Called once the submission (and zip) is complete and validated, just before the first is renamed
    // into place (so the caller can write its own output, a run manifest, beside them).
    std::function<void(const SubmissionResult& result)> before_commit;
};

struct SubmissionValidation {
    int64_t images = 0;                // images found in the written result
    int64_t files = 0;                 // files written (CSV: 1)
    int64_t rows = 0;                  // CSV rows
    std::vector<std::string> checks;   // what was checked, in words
};

struct SubmissionResult {
    std::string output, zip;
    int64_t images = 0, objects = 0, empty_images = 0;
    SubmissionValidation validation;
    // Journaled runs: this run's images, those found finished in the journal, those made now.
    int64_t shard_images = 0, images_resumed = 0, images_run = 0;
    std::string parts_dir;
    bool assembled = true;              // false for a shard: the submission comes from merge_submission()
};

SubmissionResult write_submission(const SubmissionOptions& options, const ProgressFn& progress = {});

// The parts folder of a journaled run writing `options.output` (options.parts_dir when given).
std::string submission_parts_dir(const SubmissionOptions& options);

struct SubmissionMergeOptions {
    std::string parts_dir;   // OUTPUT.parts of the shards
    std::string format;      // optional: refused unless it is the format the shards wrote
    std::string output;      // default: the output the shards were given
    std::string zip;
    bool overwrite = false;
    bool keep_parts = false; // leave the parts folder after a successful merge
    std::function<void(const SubmissionResult& result)> before_commit;  // as SubmissionOptions'
};

// Assembles the submission of a sharded run once every shard is complete: every shard's journal must
// be present and list all of its images (else an Error names the missing or unfinished shards); the
// result is validated like a direct run's, renamed into place, optionally zipped, and the parts folder
// removed. Byte-identical to write_submission() without shards.
SubmissionResult merge_submission(const SubmissionMergeOptions& options, const ProgressFn& progress = {});

// Re-reads a written submission and checks the format's rules: CSV syntax, one entry per expected
// image and no other, RLE/WKT that decode within the image size; file names, sizes, one uint8 band and
// the allowed values for the image formats. Throws an Error naming the file (and line) of the first
// problem.
SubmissionValidation validate_submission(const SubmissionOptions& options, const std::string& written,
                                         const std::vector<std::string>& image_names);

// The output file name(s) of one contest image.
std::vector<std::string> submission_file_names(const SubmissionOptions& options, const std::string& image_name);

// The class names of a multi-class format in mask-id order (loveda: background, building, ...; gaofen
// 2020-9class: road, building, ..., other); empty for the binary formats.
std::vector<std::string> submission_class_names(const SubmissionOptions& options);

// For masks made by a model: its class ids mapped onto the format's by name (case-insensitive;
// "background" also matches the format's catch-all "other"). Empty for binary formats, which take any
// foreground. Throws a usage Error naming the model classes the format does not have (give --map).
std::map<int, int> class_map_by_name(const SubmissionOptions& options, const std::vector<std::string>& model_classes,
                                     const std::string& model_name);

// `rsi submit decode`: a Tianchi or SpaceNet CSV back into one PNG mask per image (0 and `foreground`).
struct DecodeOptions {
    SubmissionFormat format = SubmissionFormat::tianchi;
    std::string input;        // the CSV
    std::string output_dir;   // created; one <image stem>.png per image
    int64_t width = 512, height = 512;
    int foreground = 255;
    bool overwrite = false;
};
struct DecodeResult {
    int64_t images = 0;
    std::string output_dir;
};
DecodeResult decode_submission(const DecodeOptions& options, const ProgressFn& progress = {});

// "512x512" or "512" -> {width, height}; throws a usage Error.
std::pair<int64_t, int64_t> parse_image_size(const std::string& text, const std::string& option);

}  // namespace rsi
